"""Region capacity from the nodes that match each Region's nodeSelector (pure).

What the planner knows about free GPUs comes only from here: allocatable GPUs of Ready, schedulable
nodes, minus what scheduled, unfinished pods request.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from meridian.api.base import Condition
from meridian.api.region import REGION_LABEL, GpuPool, Region, RegionObservedStatus

GPU_RESOURCE = "nvidia.com/gpu"
PRODUCT_LABEL = "nvidia.com/gpu.product"
MEMORY_LABEL = "nvidia.com/gpu.memory"


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    labels: Mapping[str, str] = obj.get("metadata", {}).get("labels") or {}
    return labels


def matches(node: Mapping[str, Any], selector: Mapping[str, str]) -> bool:
    labels = _labels(node)
    return all(labels.get(k) == v for k, v in selector.items())


def schedulable(node: Mapping[str, Any]) -> bool:
    if node.get("spec", {}).get("unschedulable"):
        return False
    for cond in node.get("status", {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def _int(value: Any) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


def gpu_requests(pod: Mapping[str, Any]) -> int:
    total = 0
    for c in pod.get("spec", {}).get("containers") or []:
        res = c.get("resources") or {}
        total += _int((res.get("requests") or {}).get(GPU_RESOURCE, (res.get("limits") or {}).get(GPU_RESOURCE, 0)))
    return total


def requested_by_node(pods: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for pod in pods:
        node = pod.get("spec", {}).get("nodeName")
        if node and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
            out[node] += gpu_requests(pod)
    return dict(out)


def region_status(
    region: Region, nodes: Sequence[Mapping[str, Any]], requested: Mapping[str, int]
) -> RegionObservedStatus:
    mine = [n for n in nodes if matches(n, region.node_selector)]
    pools: dict[str, GpuPool] = {}
    ready = 0
    for node in mine:
        ok = schedulable(node)
        ready += ok
        capacity = _int((node.get("status", {}).get("capacity") or {}).get(GPU_RESOURCE, 0))
        if capacity == 0:
            continue
        labels = _labels(node)
        product = labels.get(PRODUCT_LABEL, "unknown")
        pool = pools.setdefault(product, GpuPool(product=product, memoryMiB=_int(labels.get(MEMORY_LABEL, 0))))
        pool.capacity += capacity
        if ok:
            pool.allocatable += _int((node.get("status", {}).get("allocatable") or {}).get(GPU_RESOURCE, 0))
        pool.requested += requested.get(node["metadata"]["name"], 0)
    gpus = [pools[p] for p in sorted(pools)]
    total = sum(p.allocatable for p in gpus)
    free = sum(max(p.allocatable - p.requested, 0) for p in gpus)
    cond = Condition(
        type="Ready",
        status="True" if ready else "False",
        reason="NodesReady" if ready else "NoSchedulableNodes",
        message=f"{ready} of {len(mine)} nodes Ready and schedulable",
    )
    return RegionObservedStatus(
        nodes=len(mine), readyNodes=ready, gpus=gpus, totalGpus=total, freeGpus=free, conditions=[cond]
    )


def orphan_region_labels(regions: Sequence[Region], nodes: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Nodes carrying a region label that no Region selects: reported, never used for resident models."""
    out: dict[str, int] = defaultdict(int)
    for node in nodes:
        label = _labels(node).get(REGION_LABEL)
        if label and not any(matches(node, r.node_selector) for r in regions):
            out[label] += 1
    return dict(out)
