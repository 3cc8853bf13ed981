"""The placement plan: how many replicas each region gets, and why.

`plan(spec, regions, observed)` is the whole interface: pure, deterministic, no I/O. The reconcile
loop renders one Deployment per RegionTarget. The steps, each in its own module:
qualify (which regions may run the model) → capacity (how many replicas fit in each) →
distribute (home split by weight; the capacity-bound target, spilling by weight) →
failover (unschedulable timeouts; the surge-first step from what runs now toward the target).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from meridian.api.modeldeployment import ModelDeploymentSpec, RegionPreference
from meridian.api.region import NODE_REGION_LABEL, Region
from meridian.placement.capacity import Capacity, region_capacity
from meridian.placement.distribute import pend_at_home, weighted_split
from meridian.placement.failover import Unschedulable, holds, moves, transition, unschedulable
from meridian.placement.qualify import Qualification, plural, qualify
from meridian.placement.types import (
    ANY_REGION,
    Exclusion,
    Hold,
    Move,
    MoveKind,
    Observed,
    Plan,
    Problem,
    RegionTarget,
)

__all__ = [
    "ANY_REGION",
    "Exclusion",
    "Hold",
    "Move",
    "Observed",
    "Plan",
    "Problem",
    "RegionTarget",
    "plan",
    "split_by_weight",
]


def split_by_weight(total: int, weights: Mapping[str, int], minimums: Mapping[str, int]) -> dict[str, int]:
    """Largest-remainder split of `total` by weight after each region's minimum; ties by name."""
    return weighted_split(total, weights, minimums, {}, {}).counts


def plan(
    spec: ModelDeploymentSpec,
    regions: Sequence[Region],
    observed: Observed,
    total: int | None = None,
    untrusted: Mapping[str, str] | None = None,
) -> Plan:
    """Per-region replica targets for `total` replicas (default spec.replicas); `untrusted` regions
    (with why) are never used, and replicas there are evicted."""
    want = spec.replicas if total is None else total
    by_name = {r.name: r for r in regions}
    placement = spec.placement

    if not regions:
        if placement.residency:
            tags = ", ".join(sorted(placement.residency))
            return Plan(want, problems=(Problem("NoRegions", f"residency {tags} is required but no Region exists"),))
        return Plan(want, (RegionTarget(ANY_REGION, want, "no Region objects exist: placed on any node", home=want),))

    unknown = sorted({p.name for p in placement.regions} - set(by_name))
    if unknown:
        return Plan(
            want,
            problems=(Problem("UnknownRegion", f"spec.placement.regions names {plural('unknown region', unknown)}"),),
        )
    qualification = qualify(spec, by_name, untrusted)
    if qualification.problems:
        return Plan(want, problems=qualification.problems, excluded=qualification.excluded)
    return _Planner(spec, by_name, qualification, observed, want).run()


@dataclass(frozen=True)
class _Limits:
    weight: int
    minimum: int
    maximum: int | None


class _Planner:
    """One planning pass over qualifying regions; holds the intermediate splits so reasons can cite them."""

    def __init__(
        self,
        spec: ModelDeploymentSpec,
        regions: Mapping[str, Region],
        qualification: Qualification,
        observed: Observed,
        want: int,
    ) -> None:
        self.spec, self.regions, self.q, self.want = spec, regions, qualification, want
        self.failover_on = spec.placement.failover.enabled
        self.qualifying = qualification.qualifying
        self.current = {r: n for r, n in sorted(observed.replicas.items()) if n > 0}
        self.waits: dict[str, Unschedulable] = unschedulable(spec.placement.failover, observed)
        self.scheduled = {r: n - (self.waits[r].count if r in self.waits else 0) for r, n in self.current.items()}
        if observed.ready is None:
            self.ready = dict(self.scheduled)
        else:
            self.ready = {r: max(0, min(observed.ready.get(r, 0), n)) for r, n in self.current.items()}
        prefs: dict[str, RegionPreference] = {p.name: p for p in spec.placement.regions}
        self.limits = {
            r: _Limits(prefs[r].weight, prefs[r].min_replicas, prefs[r].max_replicas)
            if r in prefs
            else _Limits(1, 0, None)
            for r in self.qualifying
        }
        self.weight_sum = sum(lim.weight for lim in self.limits.values())
        self.caps: dict[str, Capacity] = {
            r: region_capacity(regions[r], spec, self.scheduled.get(r, 0), observed.now, observed.promised.get(r, 0))
            for r in self.qualifying
        }
        self.surge = max(1, spec.rollout.max_surge)
        self.now = observed.now
        fits = {r: c.replicas for r, c in self.caps.items()}
        self.holds: dict[str, Hold] = holds(spec.placement.failover, observed, self.waits, fits, self.scheduled)

    # --- the splits ---------------------------------------------------------------------------------

    def bound(self, region: str) -> int | None:
        """Replicas that can run in `region`: known capacity, or what failover holds it at."""
        fits = self.caps[region].replicas
        hold = self.holds.get(region)
        if hold is not None:
            fits = hold.replicas if fits is None else min(fits, hold.replicas)
        return fits

    def run(self) -> Plan:
        weights = {r: lim.weight for r, lim in self.limits.items()}
        minimums = {r: lim.minimum for r, lim in self.limits.items()}
        maximums = {r: lim.maximum for r, lim in self.limits.items()}
        prefer = {r: self.current.get(r, 0) for r in self.qualifying}
        home = weighted_split(self.want, weights, minimums, maximums, prefer)
        self.home = home.counts
        if self.failover_on:
            upper: dict[str, int | None] = {}
            for r in self.qualifying:
                fits, most = self.bound(r), maximums[r]
                upper[r] = most if fits is None else fits if most is None else min(fits, most)
            fit = weighted_split(self.want, weights, minimums, upper, prefer)
            self.target = pend_at_home(fit.counts, self.home, fit.unplaced - home.unplaced)
        else:
            self.target = dict(self.home)

        self.evict: dict[str, str] = {}
        self.drain: dict[str, str] = {}
        for r in self.current:
            if r in self.limits:
                continue
            exclusion = self.q.exclusion(r)
            if r in self.q.forbidden:
                self.evict[r] = self.q.forbidden[r]
            elif exclusion is not None:
                self.drain[r] = exclusion.reason
            elif self.spec.placement.residency:  # no Region object: its jurisdictions cannot be checked
                self.evict[r] = "has no Region object, so residency cannot be verified"
            else:
                self.drain[r] = "has no Region object"

        self.step = transition(
            self.current, self.keep_draining(), self.ready, evict=self.evict, drain_first=self.drain, surge=self.surge
        )
        why = {r: self.source(r) for r in self.current if self.current[r] > self.target.get(r, 0)}
        beyond = 0
        for r, n in self.step.items():
            fits = self.bound(r) if r in self.limits else None
            beyond += 0 if fits is None else max(0, n - fits)
        spilled = self.spill_sources()
        return Plan(
            total=self.want,
            targets=tuple(self.region_target(r, spilled.get(r, [])) for r in sorted(self.step)),
            displaced=sum(max(0, n - self.home.get(r, 0)) for r, n in self.step.items()),
            unplaced=home.unplaced + beyond,
            moves=moves(self.current, self.step, self.target, why),
            excluded=self.exclusions(),
            notes=self.notes(home.unplaced, beyond),
            held=self.holds,
        )

    def keep_draining(self) -> dict[str, int]:
        """The target, plus ready replicas of draining regions that have no replacement anywhere.

        Only maxReplicas can leave the target short of the total; the replicas it cannot take stay
        where they are draining from rather than stop serving (surge first, with nothing to surge to).
        """
        out = dict(self.target)
        short = self.want - sum(self.target.values())
        for r in sorted(self.drain):
            keep = min(short, self.ready.get(r, 0))
            if keep > 0:
                out[r] = keep
                short -= keep
        return out

    # --- reasons ------------------------------------------------------------------------------------

    def share(self, region: str) -> str:
        lim = self.limits[region]
        text = f"weight {lim.weight} of {self.weight_sum}"
        if lim.minimum:
            text += f", minReplicas {lim.minimum}"
        if lim.maximum is not None and self.home.get(region, 0) >= lim.maximum:
            text += f", maxReplicas {lim.maximum}"
        return text

    def limit(self, region: str) -> str:
        """Why `region` runs fewer than its home share: failover, else capacity."""
        wait, hold = self.waits.get(region), self.holds.get(region)
        if wait is not None and wait.overdue:
            return f"failover from {region}: {wait.describe()}"
        if hold is not None:
            held_for = int(self.now - hold.since)
            return f"failover from {region}: held at {hold.replicas} for {held_for}s until its capacity grows"
        return f"capped by capacity: {self.caps[region].describe()}"

    def source(self, region: str) -> tuple[MoveKind, str]:
        """Why replicas leave `region` in this plan (for moves and Events)."""
        if region in self.evict:
            return "Evict", f"{region} {self.evict[region]}"
        if self.failed_over(region):
            return "Failover", self.limit(region)
        if region in self.drain:
            return "Drain", f"draining {region}: {self.drain[region]}"
        fits = self.caps[region].replicas
        if self.failover_on and fits is not None and fits < self.current[region]:
            return "Capacity", f"{region} {self.limit(region)}"
        below_home = any(self.current.get(r, 0) < self.home[r] for r in self.qualifying)
        if not below_home and sum(self.target.values()) < sum(self.current.values()):
            return "Scale", f"scale down to {self.want}"
        above = self.current[region] - self.home.get(region, 0)
        return (
            "Rebalance",
            f"back toward the weighted split: {region} holds {above} above its share ({self.share(region)})",
        )

    def spill_sources(self) -> dict[str, list[str]]:
        """For each region above its home share, the regions whose replicas it holds (failover first)."""
        give = {
            r: self.home[r] - self.target.get(r, 0) for r in self.qualifying if self.target.get(r, 0) < self.home[r]
        }
        order = sorted(give, key=lambda r: (not self.failed_over(r), r))
        out: dict[str, list[str]] = {}
        for dst in self.qualifying:
            extra = self.target.get(dst, 0) - self.home[dst]
            for src in order:
                n = min(extra, give[src])
                if n > 0:
                    give[src] -= n
                    extra -= n
                    out.setdefault(dst, []).append(src)
        return out

    def failed_over(self, region: str) -> bool:
        """Failover bounds this region now (unschedulable too long) or still (held)."""
        return region in self.holds

    def region_target(self, region: str, spilled_from: Sequence[str]) -> RegionTarget:
        n = self.step[region]
        if region not in self.limits:
            if region == ANY_REGION:
                selector: Mapping[str, str] = {}
            elif region in self.regions:
                selector = self.regions[region].node_selector
            else:
                selector = {NODE_REGION_LABEL: region}
            why = self.drain.get(region, "not a qualifying region")
            return RegionTarget(
                region, n, f"draining: {why}; kept until replacements are ready (surge first)", selector
            )

        parts = [self.share(region)]
        target, home, cap, fits = self.target.get(region, 0), self.home[region], self.caps[region], self.bound(region)
        parts += [
            self.limit(src) if self.failed_over(src) else f"spill from {src}: {self.limit(src)}" for src in spilled_from
        ]
        if target < home and fits is not None and target >= fits:
            parts.append(self.limit(region))
        if cap.replicas is None:
            parts.append(cap.describe())
        if fits is not None and n > fits:
            tail = "" if self.failover_on else "; failover disabled, they stay here"
            why = self.limit(region) if region in self.holds else cap.describe()
            parts.append(f"over capacity: {n - fits} of {n} do not fit ({why}){tail}")
        wait = self.waits.get(region)
        if wait is not None and not wait.overdue:
            secs = self.spec.placement.failover.unschedulable_seconds
            parts.append(
                f"{wait.describe()}; " + (f"failover after {secs}s" if self.failover_on else "failover disabled")
            )
        if n > target:
            parts.append(f"{n - target} kept until replacements elsewhere are ready (surge first)")
        elif n < target:
            parts.append(f"{target - n} more once the replicas already moving are ready (maxSurge {self.surge})")
        return RegionTarget(region, n, "; ".join(parts), self.regions[region].node_selector, home, fits)

    def exclusions(self) -> tuple[Exclusion, ...]:
        out = [e for e in self.q.excluded if e.region not in self.step]
        for r in self.qualifying:
            if r in self.step:
                continue
            if self.failed_over(r):
                out.append(Exclusion(r, "failover", self.limit(r)))
            elif self.target.get(r, 0) > 0:
                later = f"{self.target[r]} to come once the replicas already moving are ready (maxSurge {self.surge})"
                out.append(Exclusion(r, "moving", f"{self.share(r)}; {later}"))
            elif self.home[r] > 0:
                out.append(Exclusion(r, "capacity", self.limit(r)))
            else:
                out.append(Exclusion(r, "weight", f"{self.share(r)}: its share of {self.want} rounds to 0"))
        return tuple(sorted(out, key=lambda e: e.region))

    def notes(self, no_room: int, beyond: int) -> tuple[str, ...]:
        """Plan-level sentences for PlacementSatisfied: where replicas are missing and why."""
        out: list[str] = []
        for r in self.qualifying:
            runs, home = self.step.get(r, 0), self.home[r]
            if runs < home:
                fits = self.bound(r)
                bound = fits is not None and self.target.get(r, 0) >= fits
                why = self.limit(r) if bound else "replicas moving there, surge first"
                out.append(f"{r} runs {runs} of {home}: {why}")
        out += [f"{r} draining: {why}" for r, why in self.drain.items() if r in self.step]
        if no_room:
            most = sum(lim.maximum or 0 for lim in self.limits.values())
            out.append(f"maxReplicas of the qualifying regions sum to {most}: {no_room} of {self.want} have no region")
        if beyond:
            tail = "they wait for capacity" if self.failover_on else "failover disabled, they stay where they are"
            out.append(f"{beyond} replica{'' if beyond == 1 else 's'} beyond known capacity; {tail}")
        return tuple(out)
