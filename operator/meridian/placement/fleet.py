"""A fleet file as the Regions a cluster built from it would report, capacity included.

`region_manifests` gives the Region specs `sim up` creates; their status is what the operator would
observe once the nodes exist: every pool's GPUs allocatable and none requested. With it, `plan
--fleet` answers capacity questions (does this model fit, where does it spill) without a cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from meridian.api.region import Region
from meridian.sim.fleet import Fleet, NodePool, region_manifests


def pool_status(pools: Sequence[NodePool]) -> dict[str, Any]:
    """RegionObservedStatus (wire form) of an idle region made of `pools`."""
    nodes = sum(p.count for p in pools)
    by_product: dict[tuple[str, int], int] = {}
    for p in pools:
        if p.gpus_per_node > 0 and p.count > 0:
            key = (p.gpu_product, p.gpu_memory_mib)
            by_product[key] = by_product.get(key, 0) + p.count * p.gpus_per_node
    gpus = [
        {"product": product, "memoryMiB": memory, "capacity": n, "allocatable": n, "requested": 0}
        for (product, memory), n in sorted(by_product.items())
    ]
    total = sum(by_product.values())
    ready = {"type": "Ready", "status": "True", "reason": "NodesReady"}
    if not nodes:
        ready = {"type": "Ready", "status": "False", "reason": "NoNodes", "message": "no node in this region"}
    return {
        "nodes": nodes,
        "readyNodes": nodes,
        "gpus": gpus,
        "totalGpus": total,
        "freeGpus": total,
        "conditions": [ready],
    }


def regions_from_fleet(fleet: Fleet) -> list[Region]:
    """Every region of the fleet as a Region with spec and observed capacity."""
    out = []
    for manifest in region_manifests(fleet):
        name = manifest["metadata"]["name"]
        status = pool_status([p for p in fleet.node_pools if p.region == name])
        out.append(Region.model_validate({**manifest, "status": status}))
    return out
