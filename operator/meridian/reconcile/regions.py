"""Keeps every Region's status (nodes, GPUs per product, free GPUs, trust) in step with its nodes and pods.

A Region whose node another Region also selects, or whose selector a kubelet could satisfy by labelling
its own Node, gets a Warning Event when that condition turns bad, once: the stored status is the memory,
so a restart or a refresh with nothing new posts nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from meridian.api.region import Region
from meridian.log import get as get_logger
from meridian.placement.inventory import (
    KUBELET_SETTABLE_LABELS,
    NODE_CLAIMED_BY_TWO_REGIONS,
    READY,
    SELECTOR_PROTECTED,
    claims_of,
    orphan_region_labels,
    region_status,
)
from meridian.reconcile import events
from meridian.reconcile.kube import Kube
from meridian.sync.insync import in_sync

log = get_logger("meridian.regions")


@dataclass
class RegionMemory:
    """What this process wrote to Region status, and the orphan region labels it has reported."""

    # Region uid → (the resourceVersion the cache held when we wrote, what we wrote): until the cache
    # moves past that version, it has not seen our write, and the write is what is current
    written: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    orphans_reported: set[str] = field(default_factory=set)

    def current(self, region: Region) -> dict[str, Any]:
        seen, status = self.written.get(region.metadata.uid, ("", {}))
        return status if seen and seen == region.metadata.resource_version else region.status.wire()


# (condition type, status, reason) that make a Region untrustworthy, each worth one Warning Event
BAD = ((READY, "False", NODE_CLAIMED_BY_TWO_REGIONS), (SELECTOR_PROTECTED, "False", KUBELET_SETTABLE_LABELS))


def _by_type(conditions: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("type")): c for c in conditions}


def with_transition_times(new: list[dict[str, Any]], old: Sequence[Mapping[str, Any]], now: str) -> None:
    """lastTransitionTime stays while a condition's status does not change."""
    before = _by_type(old)
    for c in new:
        prev = before.get(c["type"], {})
        kept = prev.get("lastTransitionTime") if prev.get("status") == c["status"] else None
        c["lastTransitionTime"] = kept or now


def newly_bad(new: Sequence[Mapping[str, Any]], old: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Conditions of `new` in a BAD state that `old` was not in."""
    before, out = _by_type(old), []
    for c in new:
        key = (c.get("type"), c.get("status"), c.get("reason"))
        prev = before.get(str(c.get("type")))
        if key in BAD and (prev is None or (prev.get("type"), prev.get("status"), prev.get("reason")) != key):
            out.append(c)
    return out


async def refresh_regions(
    kube: Kube,
    regions: Sequence[Region],
    nodes: Sequence[Mapping[str, Any]],
    requested: Mapping[str, int],
    memory: RegionMemory,
) -> int:
    """Write each Region's observed capacity and conditions when they changed; returns how many were written.

    `regions`, `nodes` and `requested` (GPUs held per node) come from the watch caches; `memory` holds
    what this process last wrote, since the cache may not have seen its own write yet."""
    claims = claims_of(regions, nodes)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    written = 0
    for region in regions:
        status = region_status(region, nodes, requested, claims).wire()
        current = memory.current(region)
        old_conditions: list[dict[str, Any]] = current.get("conditions", [])
        with_transition_times(status["conditions"], old_conditions, now)
        if in_sync(status, current) and in_sync(current, status):
            continue
        await kube.apply_status("Region", "", region.name, status)
        memory.written[region.metadata.uid] = (region.metadata.resource_version, status)
        written += 1
        for cond in newly_bad(status["conditions"], old_conditions):
            log.warning("region is not trustworthy", region=region.name, reason=cond["reason"], detail=cond["message"])
            await events.emit(
                kube, events.region_ref(region.name, region.metadata.uid), cond["reason"], cond["message"], warning=True
            )
    for label, count in sorted(orphan_region_labels(regions, nodes).items()):
        if label not in memory.orphans_reported:
            memory.orphans_reported.add(label)
            log.warning(
                "nodes carry a region label that no Region selects; they are never used for resident models",
                region_label=label,
                nodes=count,
            )
    return written
