"""Is a live object already what we would apply? Decides whether a reconcile writes at all.

A desired manifest is in sync when every field it sets has the same value live. The API server adds
defaults (ignored: we never set them) and canonicalises quantities ("0.5" → "500m"), so strings that
parse as quantities compare by value.
"""

from __future__ import annotations

from typing import Any

from meridian.quantity import quantity_or_none


def _equal_scalars(desired: Any, live: Any) -> bool:
    if desired == live:
        return True
    if isinstance(desired, str | int) and isinstance(live, str | int) and not isinstance(desired, bool):
        a, b = quantity_or_none(str(desired)), quantity_or_none(str(live))
        return a is not None and a == b
    return False


def in_sync(desired: Any, live: Any) -> bool:
    """True when `live` already holds every value `desired` sets."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return False
        return all(k in live and in_sync(v, live[k]) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list) or len(desired) != len(live):
            return False
        return all(in_sync(d, v) for d, v in zip(desired, live, strict=True))
    return _equal_scalars(desired, live)
