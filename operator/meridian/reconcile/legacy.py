"""What earlier versions of Meridian left on ModelDeployments, taken off the first time one is seen.

Those versions ran kopf timers and change handlers, so kopf put its finalizer on every model and
kept its last-handled configuration in an annotation. With nothing left to remove it, that finalizer
would keep a deleted model, and the namespace it is in, from ever going.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meridian import GROUP

FINALIZER = f"{GROUP}/finalizer"
ANNOTATIONS = (f"{GROUP}/last-handled-configuration",)


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def cleanup(body: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The JSON patch that removes the leftovers from `body`, or None when it has none. The finalizer
    list is replaced only if it is still the one read (`test`), so no one else's finalizer is lost."""
    meta = body.get("metadata") or {}
    finalizers = list(meta.get("finalizers") or [])
    annotations = meta.get("annotations") or {}
    ops: list[dict[str, Any]] = []
    if FINALIZER in finalizers:
        ops.append({"op": "test", "path": "/metadata/finalizers", "value": finalizers})
        kept = [f for f in finalizers if f != FINALIZER]
        ops.append({"op": "replace", "path": "/metadata/finalizers", "value": kept})
    for a in ANNOTATIONS:
        if a in annotations:
            ops.append({"op": "remove", "path": f"/metadata/annotations/{_pointer(a)}"})
    return ops or None
