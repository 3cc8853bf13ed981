"""The placement plan: how many replicas each region gets, and why.

`plan(spec, regions, observed)` is the whole interface: pure, deterministic, no I/O. The reconcile
loop renders one Deployment per RegionTarget; the placement rules live behind this function.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from meridian.api.modeldeployment import ModelDeploymentSpec
from meridian.api.region import Region

ANY_REGION = "any"


@dataclass(frozen=True)
class RegionTarget:
    """Replicas for one region; `node_selector` is how that region's nodes are reached."""

    region: str
    replicas: int
    reason: str
    node_selector: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Observed:
    """What runs now, per region: the planner keeps it when it still satisfies the rules."""

    replicas: Mapping[str, int] = field(default_factory=dict)
    unschedulable: Mapping[str, int] = field(default_factory=dict)
    unschedulable_since: Mapping[str, float] = field(default_factory=dict)
    now: float = 0.0


@dataclass(frozen=True)
class Problem:
    """Something only the operator can detect; it stalls the ModelDeployment."""

    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    total: int
    targets: tuple[RegionTarget, ...] = ()
    problems: tuple[Problem, ...] = ()

    @property
    def stalled(self) -> bool:
        return bool(self.problems)

    def replicas_by_region(self) -> dict[str, int]:
        return {t.region: t.replicas for t in self.targets}


def split_by_weight(total: int, weights: Mapping[str, int], minimums: Mapping[str, int]) -> dict[str, int]:
    """Largest-remainder split of `total` by weight, after each region's minimum is granted.

    Ties break by name so the same input always gives the same split.
    """
    names = sorted(weights)
    out = {n: min(minimums.get(n, 0), total) for n in names}
    left = total - sum(out.values())
    if left < 0:  # minimums exceed the total: grant them in name order until it runs out
        out, budget = {}, total
        for n in names:
            out[n] = min(minimums.get(n, 0), budget)
            budget -= out[n]
        return out
    weight_sum = sum(weights[n] for n in names)
    if left == 0 or not names:
        return out
    if weight_sum == 0:
        weights = {n: 1 for n in names}
        weight_sum = len(names)
    shares = {n: left * weights[n] / weight_sum for n in names}
    for n in names:
        out[n] += int(shares[n])
    rest = left - sum(int(shares[n]) for n in names)
    for n in sorted(names, key=lambda n: (-(shares[n] - int(shares[n])), -weights[n], n))[:rest]:
        out[n] += 1
    return out


def plan(
    spec: ModelDeploymentSpec, regions: Sequence[Region], observed: Observed, total: int | None = None
) -> Plan:
    """Per-region replica targets for `total` replicas (default spec.replicas)."""
    want = spec.replicas if total is None else total
    by_name = {r.name: r for r in regions}
    placement = spec.placement
    required = set(placement.residency)

    if not regions:
        if required:
            return Plan(
                want,
                problems=(
                    Problem(
                        "NoRegions", f"residency {sorted(required)} is required but no Region objects exist"
                    ),
                ),
            )
        return Plan(want, (RegionTarget(ANY_REGION, want, "no Region objects exist: placed on any node"),))

    unknown = [p.name for p in placement.regions if p.name not in by_name]
    if unknown:
        return Plan(
            want,
            problems=(
                Problem(
                    "UnknownRegion",
                    f"spec.placement.regions names unknown regions: {', '.join(sorted(unknown))}",
                ),
            ),
        )

    allowed = [p.name for p in placement.regions] or sorted(by_name)
    candidates = [n for n in allowed if n not in set(placement.exclude_regions)]
    qualifying = [n for n in candidates if required <= set(by_name[n].spec.jurisdictions)]
    if not qualifying:
        missing = sorted({t for n in candidates for t in required - set(by_name[n].spec.jurisdictions)})
        return Plan(
            want,
            problems=(
                Problem(
                    "NoQualifyingRegion",
                    f"no allowed region carries every required jurisdiction; missing: {', '.join(missing) or 'none'}",
                ),
            ),
        )

    prefs = {p.name: p for p in placement.regions}
    weights = {n: prefs[n].weight if n in prefs else 1 for n in qualifying}
    minimums = {n: prefs[n].min_replicas if n in prefs else 0 for n in qualifying}
    split = split_by_weight(want, weights, minimums)
    targets = tuple(
        RegionTarget(n, split[n], f"weight {weights[n]} of {sum(weights.values())}", by_name[n].node_selector)
        for n in sorted(split)
        if split[n] > 0
    )
    return Plan(want, targets)
