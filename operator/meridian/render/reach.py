"""How a region's nodes are reached. Today: node affinity in one cluster.

This is the single place that knows it; a multi-cluster engine (Karmada) would replace this module
with a PropagationPolicy pinned to the region's member clusters (DESIGN §6).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meridian.api.modeldeployment import GpuResources

GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_MEMORY_LABEL = "nvidia.com/gpu.memory"


def node_affinity(region_selector: Mapping[str, str], gpu: GpuResources) -> dict[str, Any]:
    """Required node affinity: the region's labels, any of the GPU products, minimum GPU memory."""
    exprs: list[dict[str, Any]] = [
        {"key": k, "operator": "In", "values": [v]} for k, v in sorted(region_selector.items())
    ]
    if gpu.products:
        exprs.append({"key": GPU_PRODUCT_LABEL, "operator": "In", "values": list(gpu.products)})
    if gpu.min_memory_mi_b > 0:
        exprs.append({"key": GPU_MEMORY_LABEL, "operator": "Gt", "values": [str(gpu.min_memory_mi_b - 1)]})
    if not exprs:
        return {}
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": exprs}]}
        }
    }
