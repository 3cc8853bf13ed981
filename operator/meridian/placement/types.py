"""The planner's vocabulary: what it reads (Observed) and what it returns (Plan and its parts).

Kept apart from plan.py so the rule modules (qualify, capacity, distribute, failover) can use these
types without importing the orchestrator; plan.py re-exports them as the public interface.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

ANY_REGION = "any"

MoveKind = Literal["Evict", "Failover", "Drain", "Capacity", "Rebalance", "Scale"]
ExclusionRule = Literal[
    "residency",
    "untrusted",
    "allowList",
    "excludeRegions",
    "cordoned",
    "gpu",
    "fit",
    "capacity",
    "failover",
    "weight",
    "moving",
]


@dataclass(frozen=True)
class RegionTarget:
    """Replicas for one region; `node_selector` is how that region's nodes are reached.

    `home` is what the region gets once nothing is displaced (its weighted share); `capacity` is how
    many replicas of this model can run there now: free GPUs, or the failover hold (None: unknown,
    treated as unbounded).
    """

    region: str
    replicas: int
    reason: str
    node_selector: Mapping[str, str] = field(default_factory=dict)
    home: int = 0
    capacity: int | None = None


@dataclass(frozen=True)
class Hold:
    """A region failover has capped at `replicas` for this model, since `since`.

    Unschedulable pods disappear once failover removes them, so without this memory the next pass
    would move them straight back. The hold ends when the region's capacity for the model grows past
    `capacity` (replicas that fit when it failed; None: unknown) or, to probe, after a while.
    """

    replicas: int
    capacity: int | None
    since: float


@dataclass(frozen=True)
class Observed:
    """What runs now, per region: the planner keeps it when it still satisfies the rules.

    `replicas` are the per-region replica counts currently asked for (the last plan's targets);
    `unschedulable` counts pods the scheduler cannot place, pending since `unschedulable_since`
    (seconds, same clock as `now`). `ready` is per-region ready replicas: pass it, or moves assume
    every scheduled replica is ready and finish a surge one pass early. `held` is the previous
    plan's `held`, fed back so failover sticks until capacity returns. `promised` is per region the
    GPUs of other models' replicas already written there that no node holds yet (placement/promised).
    """

    replicas: Mapping[str, int] = field(default_factory=dict)
    unschedulable: Mapping[str, int] = field(default_factory=dict)
    unschedulable_since: Mapping[str, float] = field(default_factory=dict)
    now: float = 0.0
    ready: Mapping[str, int] | None = None
    held: Mapping[str, Hold] = field(default_factory=dict)
    promised: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    """Something only the operator can detect; it stalls the ModelDeployment."""

    reason: str
    message: str


@dataclass(frozen=True)
class Move:
    """Replicas leaving one region for another in this plan: one Event each.

    `from_region` is "" for replicas that replace nothing (scale up); `to_region` is "" for replicas
    removed with no new home in this pass (scale down, or the last step of a surge-first move).
    `kind` is CamelCase, ready to be an Event reason.
    """

    from_region: str
    to_region: str
    count: int
    reason: str
    kind: MoveKind


@dataclass(frozen=True)
class Exclusion:
    """A region that gets no replica, the rule responsible and a sentence a person can read.

    Rules: residency, untrusted, allowList, excludeRegions, cordoned, gpu, fit (the region does not qualify), and
    for qualifying regions left empty: capacity, failover, weight (share rounds to 0), moving.
    """

    region: str
    rule: ExclusionRule
    reason: str


@dataclass(frozen=True)
class Plan:
    """Per-region targets, or problems (Stalled) and then no targets: children stay as they are.

    `displaced` counts replicas not in their home region (failover, capacity spill, draining,
    surge); `unplaced` counts replicas asked for beyond known capacity or every region's
    maxReplicas. PlacementSatisfied is `satisfied`; `message` says why. `held` is failover memory to
    pass back as Observed.held on the next pass.
    """

    total: int
    targets: tuple[RegionTarget, ...] = ()
    problems: tuple[Problem, ...] = ()
    displaced: int = 0
    unplaced: int = 0
    moves: tuple[Move, ...] = ()
    excluded: tuple[Exclusion, ...] = ()
    notes: tuple[str, ...] = ()
    held: Mapping[str, Hold] = field(default_factory=dict)

    @property
    def stalled(self) -> bool:
        return bool(self.problems)

    @property
    def satisfied(self) -> bool:
        return not self.problems and self.displaced == 0 and self.unplaced == 0

    @property
    def message(self) -> str:
        """One line for PlacementSatisfied (or Stalled): what is wrong, else the distribution."""
        if self.problems:
            return "; ".join(p.message for p in self.problems)
        parts = list(self.notes)
        if self.displaced:
            parts.insert(0, f"{self.displaced} replica{_s(self.displaced)} displaced from their home region")
        if parts:
            return "; ".join(parts)
        return "placed: " + (", ".join(f"{t.region}={t.replicas}" for t in self.targets) or "no replicas")

    def replicas_by_region(self) -> dict[str, int]:
        return {t.region: t.replicas for t in self.targets}


def _s(n: int) -> str:
    return "" if n == 1 else "s"
