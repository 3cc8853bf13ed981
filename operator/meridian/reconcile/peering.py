"""Whether this replica is the active one, by the rule kopf applies to the same peering object.

kopf pauses its ModelDeployment watch while a peer of higher priority is alive, or another of the
same priority (then every one of them pauses). The operator's own periodic work and the requeues
its caches feed are not kopf's, so they ask this before writing: a standby replica writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

PEERING_API = "kopf.dev/v1"


def alive_priorities(status: Mapping[str, Any], now: float) -> list[int]:
    """Priorities of the peers whose last keep-alive has not expired (kopf's `lastseen` + `lifetime`)."""
    out = []
    for entry in status.values():
        if not isinstance(entry, Mapping):
            continue
        try:
            seen = datetime.fromisoformat(str(entry["lastseen"])).timestamp()
            if seen + float(entry.get("lifetime", 60)) > now:
                out.append(int(entry.get("priority", 0)))
        except (KeyError, TypeError, ValueError):
            continue  # an entry kopf would not have written: no peer
    return out


def is_active(status: Mapping[str, Any] | None, priority: int, now: float) -> bool:
    """No live peer above `priority`, and at most one at it (this replica's own entry)."""
    alive = alive_priorities(status or {}, now)
    return not any(p > priority for p in alive) and sum(p == priority for p in alive) <= 1


def peering_status(name: str) -> Any:
    """Projection for the peering informer: the status of the object named `name`, nothing of others."""

    def keep(obj: Mapping[str, Any]) -> dict[str, Any] | None:
        if (obj.get("metadata") or {}).get("name") != name:
            return None
        return dict(obj.get("status") or {})

    return keep
