"""Region capacity from the nodes that match each Region's nodeSelector (pure).

What the planner knows about free GPUs comes only from here: allocatable GPUs of Ready, schedulable
nodes, minus what scheduled, unfinished pods request; and, apart, the GPUs of nodes that stopped
being Ready, with when, so that a model can wait out a flap before it believes them lost. The
conditions say whether the Region can be trusted at all: Ready is False while another Region
selects one of its nodes, and SelectorProtected is False while its selector uses only labels a
kubelet can set on its own Node.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from meridian.api.base import Condition
from meridian.api.region import NODE_REGION_LABEL, GpuPool, NodeShape, Region, RegionObservedStatus
from meridian.placement.claims import NodeClaims, node_claims, protected, settable_keys
from meridian.quantity import quantity_or_none

GPU_RESOURCE = "nvidia.com/gpu"
PRODUCT_LABEL = "nvidia.com/gpu.product"
MEMORY_LABEL = "nvidia.com/gpu.memory"

READY = "Ready"
SELECTOR_PROTECTED = "SelectorProtected"
NODE_CLAIMED_BY_TWO_REGIONS = "NodeClaimedByTwoRegions"
KUBELET_SETTABLE_LABELS = "KubeletSettableLabels"
PROTECTED_LABEL = "ProtectedLabel"


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


def not_ready_since(node: Mapping[str, Any]) -> str:
    """When an uncordoned node's Ready condition turned False or Unknown; '' if it is Ready, cordoned
    or has never reported (a node that never was Ready is not capacity lost)."""
    if node.get("spec", {}).get("unschedulable"):
        return ""
    for cond in node.get("status", {}).get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") != "True":
            return str(cond.get("lastTransitionTime") or "")
    return ""


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


def claims_of(regions: Sequence[Region], nodes: Iterable[Mapping[str, Any]]) -> NodeClaims:
    """Which Regions select each of these Node objects."""
    return node_claims(regions, ((n["metadata"]["name"], _labels(n)) for n in nodes))


def ready_condition(region: str, ready: int, total: int, claims: NodeClaims | None) -> Condition:
    """Ready: schedulable nodes, and none of this Region's nodes selected by another Region."""
    shared = claims.shared_with(region) if claims is not None else {}
    if shared:
        node = min(shared)
        others = sorted({o for rs in shared.values() for o in rs})
        more = ""
        if len(shared) > 1 or len(others) > 1:
            more = f" ({len(shared)} of its nodes are shared, with Region{'s' * (len(others) > 1)} {', '.join(others)})"
        return Condition(
            type=READY,
            status="False",
            reason=NODE_CLAIMED_BY_TWO_REGIONS,
            message=(
                f"node {node} is selected by both Region {region} and Region {shared[node][0]}{more}; "
                "Regions sharing a node get no new replicas until each node is selected by one Region only"
            ),
        )
    return Condition(
        type=READY,
        status="True" if ready else "False",
        reason="NodesReady" if ready else "NoSchedulableNodes",
        message=f"{ready} of {total} nodes Ready and schedulable",
    )


def selector_condition(region: Region) -> Condition:
    """SelectorProtected: can a kubelet place its node in this Region by labelling itself?"""
    selector = region.node_selector
    if protected(selector):
        keys = sorted(k for k in selector if k not in settable_keys(selector))
        return Condition(
            type=SELECTOR_PROTECTED,
            status="True",
            reason=PROTECTED_LABEL,
            message=f"nodeSelector uses {', '.join(keys)}, which a kubelet cannot set on its own Node",
        )
    return Condition(
        type=SELECTOR_PROTECTED,
        status="False",
        reason=KUBELET_SETTABLE_LABELS,
        message=(
            f"nodeSelector uses only labels a kubelet can set on its own Node ({', '.join(sorted(selector))}), "
            f"so any node can join this Region by relabelling itself; label the nodes with "
            f"{NODE_REGION_LABEL}={region.name} and select by {NODE_REGION_LABEL} instead"
        ),
    )


def node_shape(node: Mapping[str, Any]) -> tuple[int, str, str]:
    """(GPUs, CPU, memory) the node can allocate, as the kubelet reports them ('' where it does not:
    not known, so taken to fit)."""
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    return _int(allocatable.get(GPU_RESOURCE, 0)), str(allocatable.get("cpu", "")), str(allocatable.get("memory", ""))


def _size(shape: NodeShape) -> tuple[int, Decimal, Decimal]:
    return shape.gpus, quantity_or_none(shape.cpu) or Decimal(0), quantity_or_none(shape.memory) or Decimal(0)


def region_status(
    region: Region,
    nodes: Sequence[Mapping[str, Any]],
    requested: Mapping[str, int],
    claims: NodeClaims | None = None,
) -> RegionObservedStatus:
    """Capacity and conditions of one Region; `claims` (from claims_of, over every Region) finds shared
    nodes, and the Region's own nodes by name rather than by matching its selector again."""
    if claims is not None:
        mine = [n for n in nodes if region.name in claims.owners(n["metadata"]["name"])]
    else:
        mine = [n for n in nodes if matches(n, region.node_selector)]
    pools: dict[str, GpuPool] = {}
    shapes: dict[str, dict[tuple[int, str, str], int]] = defaultdict(lambda: defaultdict(int))
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
        allocatable = _int((node.get("status", {}).get("allocatable") or {}).get(GPU_RESOURCE, 0))
        since = "" if ok else not_ready_since(node)
        if ok:
            pool.allocatable += allocatable
        elif since:
            pool.not_ready += allocatable
            pool.not_ready_since = max(pool.not_ready_since, since)
        pool.requested += requested.get(node["metadata"]["name"], 0)
        shapes[product][node_shape(node)] += 1
    for product, pool in pools.items():
        found = [NodeShape(gpus=g, cpu=c, memory=m, nodes=n) for (g, c, m), n in shapes[product].items()]
        pool.shapes = sorted(found, key=_size, reverse=True)
    gpus = [pools[p] for p in sorted(pools)]
    total = sum(p.allocatable for p in gpus)
    free = sum(max(p.allocatable - p.requested, 0) for p in gpus)
    conditions = [ready_condition(region.name, ready, len(mine), claims), selector_condition(region)]
    return RegionObservedStatus(
        nodes=len(mine), readyNodes=ready, gpus=gpus, totalGpus=total, freeGpus=free, conditions=conditions
    )


def orphan_region_labels(regions: Sequence[Region], nodes: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Nodes carrying the region label (node-restriction.kubernetes.io/region) that no Region selects:
    reported, never used for resident models."""
    out: dict[str, int] = defaultdict(int)
    for node in nodes:
        label = _labels(node).get(NODE_REGION_LABEL)
        if label and not any(matches(node, r.node_selector) for r in regions):
            out[label] += 1
    return dict(out)
