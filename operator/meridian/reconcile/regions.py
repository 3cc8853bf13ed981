"""Keeps every Region's status (nodes, GPUs per product, free GPUs, trust) in step with its nodes and pods.

The planner reads capacity as observed now (`RegionMemory.planning`), not as last written: a
thousand pods placed over a few minutes would otherwise cost a Region status write each. A change
of nodes, GPUs or trust is written at once; GPUs merely taken or freed by pods at most every
COUNTS_EVERY seconds per Region.

A Region whose node another Region also selects, or whose selector a kubelet could satisfy by labelling
its own Node, gets a Warning Event when that condition turns bad, once: the stored status is the memory,
so a restart or a refresh with nothing new posts nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from meridian.api.region import Region, RegionObservedStatus
from meridian.log import get as get_logger
from meridian.placement.claims import NodeClaims
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

COUNTS_EVERY = 15.0  # seconds between two writes of a Region whose only change is GPUs requested


@dataclass
class RegionMemory:
    """What this process observed of each Region and wrote to its status, and the orphan region
    labels it has reported."""

    # Region uid → (the resourceVersions before and after our write, what we wrote). While the cache
    # holds either, what we wrote is current: before, the cache has not seen our write; after, the
    # stored copy is our write, but as the API server pruned it (a CRD older than the operator drops
    # fields it does not know, and comparing with that copy would write again and again)
    written: dict[str, tuple[frozenset[str], dict[str, Any]]] = field(default_factory=dict)
    orphans_reported: set[str] = field(default_factory=set)
    observed: dict[str, RegionObservedStatus] = field(default_factory=dict)  # name → as last computed
    last_write: dict[str, float] = field(default_factory=dict)  # name → when (monotonic) we last wrote it

    def current(self, region: Region) -> dict[str, Any]:
        versions, status = self.written.get(region.metadata.uid, (frozenset(), {}))
        return status if region.metadata.resource_version in versions else region.status.wire()

    def planning(self, regions: Sequence[Region]) -> tuple[Region, ...]:
        """The Regions with the capacity observed at the last refresh, for the planner."""
        return tuple(
            r.model_copy(update={"status": self.observed[r.name]}) if r.name in self.observed else r for r in regions
        )


def counts_only(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """True when two Region statuses differ at most in GPUs requested (and so free)."""

    def shape(status: Mapping[str, Any]) -> dict[str, Any]:
        pools = [{k: v for k, v in p.items() if k != "requested"} for p in status.get("gpus") or []]
        return {**{k: v for k, v in status.items() if k != "freeGpus"}, "gpus": pools}

    return in_sync(shape(new), shape(old)) and in_sync(shape(old), shape(new))


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


@dataclass
class Refresh:
    """What one refresh wrote, and when a write it held back (GPU counts only) is due."""

    written: int = 0
    due_in: float | None = None


async def refresh_regions(
    kube: Kube,
    regions: Sequence[Region],
    nodes: Sequence[Mapping[str, Any]],
    requested: Mapping[str, int],
    memory: RegionMemory,
    claims: NodeClaims | None = None,
    clock: float | None = None,
) -> Refresh:
    """Observe each Region's capacity and conditions into `memory`, and write those that changed.

    `regions`, `nodes` and `requested` (GPUs held per node) come from the watch caches; `memory` holds
    what this process last wrote, since the cache may not have seen its own write yet. `claims`
    (which Regions select each node) is worked out from `regions` and `nodes` when not given;
    `clock` is monotonic time, for spacing writes of mere counts."""
    claims = claims if claims is not None else claims_of(regions, nodes)
    clock = time.monotonic() if clock is None else clock
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = Refresh()
    # the planner gets the new capacity before any write: a model's reconcile counts its own pods from
    # the cache as they are now, and capacity as old as the slowest Region write made it move
    # replicas back and forth while hundreds of its pods were being scheduled
    observed = {region.name: region_status(region, nodes, requested, claims) for region in regions}
    memory.observed = observed
    for region in regions:
        status = observed[region.name].wire()
        current = memory.current(region)
        old_conditions: list[dict[str, Any]] = current.get("conditions", [])
        with_transition_times(status["conditions"], old_conditions, now)
        if in_sync(status, current) and in_sync(current, status):
            continue
        since = clock - memory.last_write.get(region.name, -COUNTS_EVERY)
        if since < COUNTS_EVERY and counts_only(status, current):
            left = COUNTS_EVERY - since
            out.due_in = left if out.due_in is None else min(out.due_in, left)
            continue
        stored = await kube.apply_status("Region", "", region.name, status)
        versions = {region.metadata.resource_version, str((stored.get("metadata") or {}).get("resourceVersion", ""))}
        memory.written[region.metadata.uid] = (frozenset(versions - {""}), status)
        memory.last_write[region.name] = clock
        out.written += 1
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
    return out
