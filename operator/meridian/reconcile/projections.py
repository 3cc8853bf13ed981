"""What the caches keep of each object: the fields Meridian reads, nothing else (pure).

A cluster of thousands of pods costs the operator a few hundred bytes for each pod that is not
Meridian's, and a node's heartbeat (a new timestamp, nothing else) is no change at all, so it wakes
no one. The objects Meridian owns are kept whole, less their managedFields, packed as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meridian.placement.inventory import GPU_RESOURCE, gpu_requests
from meridian.render.labels import MANAGED_BY, MD_LABEL
from meridian.sync.world import CLUSTER as CLUSTER

GPUS = "gpus"  # a cached pod's GPU requests, summed over its containers before they are dropped
TERMINAL = ("Succeeded", "Failed")
KEPT_POD_METADATA = ("name", "namespace", "uid", "labels", "ownerReferences", "deletionTimestamp")


def meridian_pod(obj: Mapping[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get(MANAGED_BY) == "meridian" and MD_LABEL in labels


def pod(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """A Meridian pod: identity, owners, node and status. Any other pod: only a scheduled, unfinished
    one holding GPUs is kept, as node and GPU count, which is all Region capacity needs."""
    meta = obj.get("metadata") or {}
    node = (obj.get("spec") or {}).get("nodeName") or ""
    status = obj.get("status") or {}
    gpus = gpu_requests(obj)
    if meridian_pod(obj):
        kept = {
            k: meta[k]
            for k in ("name", "namespace", "uid", "labels", "ownerReferences", "deletionTimestamp")
            if k in meta
        }
        return {"metadata": kept, "spec": {"nodeName": node}, "status": dict(status), GPUS: gpus}
    if not node or not gpus or status.get("phase") in TERMINAL:
        return None
    return {
        "metadata": {"name": meta.get("name", ""), "namespace": meta.get("namespace", "")},
        "spec": {"nodeName": node},
        "status": {"phase": status.get("phase", "")},
        GPUS: gpus,
    }


def gpus_held(cached: Mapping[str, Any] | None) -> tuple[str, int]:
    """(node, GPUs) a cached pod takes from its node's allocatable; ("", 0) when it takes none."""
    if cached is None or (cached.get("status") or {}).get("phase") in TERMINAL:
        return ("", 0)
    node = str((cached.get("spec") or {}).get("nodeName") or "")
    return (node, int(cached.get(GPUS) or 0)) if node else ("", 0)


def node(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Labels, cordon, Ready (with when it last changed, not the heartbeats), GPU counts and
    allocatable CPU and memory (whether one replica fits a node): what Region capacity reads."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    ready = [
        {"type": "Ready", "status": c.get("status"), "lastTransitionTime": c.get("lastTransitionTime")}
        for c in status.get("conditions") or []
        if c.get("type") == "Ready"
    ]
    gpus = {
        part: {k: v for k, v in (status.get(part) or {}).items() if k in keys}
        for part, keys in (("capacity", {GPU_RESOURCE}), ("allocatable", {GPU_RESOURCE, "cpu", "memory"}))
        if GPU_RESOURCE in (status.get(part) or {})
    }
    return {
        "metadata": {"name": meta.get("name", ""), "labels": dict(meta.get("labels") or {})},
        "spec": {"unschedulable": bool(spec.get("unschedulable"))},
        "status": {"conditions": ready, **gpus},
    }


def owned(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A child Meridian applies, whole but for managedFields (often larger than the object)."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return {**obj, "metadata": meta}


@dataclass(frozen=True)
class Packed:
    """A cached child as compact JSON, a quarter of its size as Python objects, with its controller
    at hand: a thousand models' children are read a few at a time, by the reconcile of one model."""

    controller: tuple[str, str, str]  # (kind, name, uid) of the controlling owner, or ("", "", "")
    data: bytes

    @property
    def obj(self) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(self.data)
        return decoded


def packed(obj: Mapping[str, Any]) -> Packed:
    ref = controller_ref(obj)
    whole = owned(obj)
    return Packed(
        (str(ref.get("kind") or ""), str(ref.get("name") or ""), str(ref.get("uid") or "")),
        json.dumps(whole, separators=(",", ":")).encode(),
    )


def controller_ref(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ownerReference marked controller, or {} when nothing controls the object."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return next((r for r in refs if r.get("controller")), {})


def holder(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(controller uid or "", who that is): all Meridian keeps of an object it did not make,
    to refuse taking over its name."""
    ref = controller_ref(obj)
    who = f"controlled by {ref.get('kind')} {ref.get('name')}" if ref else "not controlled by Meridian"
    return str(ref.get("uid") or ""), who


def model_of_pod(cached: Mapping[str, Any]) -> tuple[str, str] | None:
    """(namespace, model-deployment label value) of a Meridian pod; None for anyone else's."""
    meta = cached.get("metadata") or {}
    label = (meta.get("labels") or {}).get(MD_LABEL)
    return (str(meta.get("namespace") or ""), str(label)) if label else None
