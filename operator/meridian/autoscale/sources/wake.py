"""The wake query: one PromQL instant query whose value says whether a model that may have no pods
is wanted (spec.autoscaling.wakeOn). The only I/O of scale to zero."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import aiohttp

from meridian.autoscale.sources.prometheus import instant_query


def query_value(body: Mapping[str, Any]) -> float | None:
    """A scalar, or the sum of a vector (empty: 0, no series means no requests); None if unusable."""
    if body.get("status") != "success":
        return None
    data = body.get("data") or {}
    try:
        if data.get("resultType") == "scalar":
            value = float(data["result"][1])
            return value if math.isfinite(value) else None
        if data.get("resultType") == "vector":
            values = [float(item["value"][1]) for item in data.get("result") or ()]
            return sum(v for v in values if math.isfinite(v))
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return None


async def wake_value(session: aiohttp.ClientSession, url: str, query: str, seconds: float = 5.0) -> float | None:
    """The query's value from Prometheus at `url`, or None when it cannot be had (never a guess of 0)."""
    try:
        body = await instant_query(session, url, query, aiohttp.ClientTimeout(total=seconds))
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    return query_value(body) if isinstance(body, dict) else None
