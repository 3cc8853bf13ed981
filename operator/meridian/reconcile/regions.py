"""Keeps every Region's status (nodes, GPUs per product, free GPUs) in step with its nodes and pods."""

from __future__ import annotations

from typing import Any

from meridian import API_VERSION
from meridian.api.region import Region
from meridian.log import get as get_logger
from meridian.placement.inventory import orphan_region_labels, region_status, requested_by_node
from meridian.reconcile.insync import in_sync
from meridian.reconcile.kube import Kube

log = get_logger("meridian.regions")


async def refresh_regions(kube: Kube, reported_orphans: set[str]) -> int:
    """Write each Region's observed capacity when it changed; returns how many were written."""
    regions = [Region.model_validate(r) for r in await kube.list(API_VERSION, "Region")]
    nodes = await kube.list("v1", "Node")
    requested = requested_by_node(await kube.list("v1", "Pod"))
    written = 0
    for region in regions:
        status = region_status(region, nodes, requested).wire()
        current: dict[str, Any] = region.status.wire()
        if in_sync(status, current) and in_sync(current, status):
            continue
        await kube.apply_status("Region", "", region.name, status)
        written += 1
    for label, count in sorted(orphan_region_labels(regions, nodes).items()):
        if label not in reported_orphans:
            reported_orphans.add(label)
            log.warning(
                "nodes carry a region label that no Region selects; they are never used for resident models",
                region_label=label,
                nodes=count,
            )
    return written
