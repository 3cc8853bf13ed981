"""Kubernetes timestamps (RFC 3339, UTC, whole seconds) to and from seconds since the epoch."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(ts: float) -> str:
    """Seconds since the epoch as the API server writes times: 2026-12-06T03:50:37Z."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds(timestamp: str | None) -> float | None:
    """An RFC 3339 timestamp as seconds since the epoch; None if empty or unreadable."""
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() if timestamp else None
    except ValueError:
        return None
