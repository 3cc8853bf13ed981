"""Stabilization windows and step limits: how fast a raw recommendation may move the replica count.

Both follow the HPA's `behavior` (autoscaling/v2) exactly, with its defaults:

- Stabilization: the raw recommendation of every evaluation is remembered with its time. A scale-up
  goes only to the *lowest* recommendation of the scale-up window (default 0 s: at once); a scale-down
  only to the *highest* of the scale-down window (default 300 s), so a dip must last the whole window.
- Step limits: per direction, a list of policies, each "at most N pods" or "at most N percent" per
  period, counted from the replica count at the start of the period (replicas changed by scale events
  inside the period are taken back out). With select "Max" the most permissive policy wins.
  Defaults: scale-up max(+4 pods, +100 %) per 15 s; scale-down 100 % per 15 s.
- minReplicas/maxReplicas bound the result in the direction of travel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from meridian.autoscale.state import TimedInt

PolicyKind = Literal["Pods", "Percent"]
Select = Literal["Max", "Min", "Disabled"]


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    """At most `value` pods (or percent) of change per `period_seconds`."""

    kind: PolicyKind
    value: int
    period_seconds: int


@dataclass(frozen=True, slots=True)
class ScalingRules:
    """One direction's stabilization window and step policies."""

    stabilization_seconds: int
    policies: tuple[ScalingPolicy, ...]
    select: Select = "Max"

    @property
    def longest_period(self) -> int:
        return max((p.period_seconds for p in self.policies), default=0)


DEFAULT_SCALE_UP_POLICIES = (ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15))
DEFAULT_SCALE_DOWN_POLICIES = (ScalingPolicy("Percent", 100, 15),)


def stabilize(
    recommendations: Sequence[TimedInt],
    desired: int,
    current: int,
    now: float,
    up_window: float,
    down_window: float,
) -> tuple[int, tuple[TimedInt, ...]]:
    """Bound `desired` by the window's min (up) and max (down); return it and the updated history."""
    up_cutoff, down_cutoff = now - up_window, now - down_window
    up, down = desired, desired
    for t, rec in recommendations:
        if t > up_cutoff:
            up = min(up, rec)
        if t > down_cutoff:
            down = max(down, rec)
    stabilized = min(max(current, up), down)
    oldest = min(up_cutoff, down_cutoff)
    kept = tuple(r for r in recommendations if r[0] >= oldest)
    return stabilized, (*kept, (now, desired))


def _changed_within(events: Sequence[TimedInt], period: int, now: float) -> int:
    cutoff = now - period
    return sum(change for t, change in events if t > cutoff)


def _period_start(current: int, ups: Sequence[TimedInt], downs: Sequence[TimedInt], period: int, now: float) -> int:
    """The replica count at the start of a policy's period: what its limit is measured from (as the HPA)."""
    return current - _changed_within(ups, period, now) + _changed_within(downs, period, now)


def scale_up_limit(
    current: int, ups: Sequence[TimedInt], downs: Sequence[TimedInt], rules: ScalingRules, now: float
) -> int:
    """Most replicas the step policies allow now."""
    if rules.select == "Disabled" or not rules.policies:
        return current
    proposals = []
    for p in rules.policies:
        start = _period_start(current, ups, downs, p.period_seconds, now)
        if p.kind == "Pods":
            proposals.append(start + p.value)
        else:  # rounded up, or a small count could never grow
            proposals.append(math.ceil(start * (1 + p.value / 100)))
    return min(proposals) if rules.select == "Min" else max(proposals)


def scale_down_limit(
    current: int, ups: Sequence[TimedInt], downs: Sequence[TimedInt], rules: ScalingRules, now: float
) -> int:
    """Fewest replicas the step policies allow now."""
    if rules.select == "Disabled" or not rules.policies:
        return current
    proposals = []
    for p in rules.policies:
        start = _period_start(current, ups, downs, p.period_seconds, now)
        if p.kind == "Pods":
            proposals.append(start - p.value)
        else:
            proposals.append(int(start * (1 - p.value / 100)))
    return max(proposals) if rules.select == "Min" else min(proposals)


def limit(
    desired: int,
    current: int,
    minimum: int,
    maximum: int,
    ups: Sequence[TimedInt],
    downs: Sequence[TimedInt],
    up_rules: ScalingRules,
    down_rules: ScalingRules,
    now: float,
) -> tuple[int, str]:
    """Apply the step limits and min/max in the direction of travel; return the count and why."""
    if desired > current:
        cap = max(scale_up_limit(current, ups, downs, up_rules, now), current)
        if maximum > cap:
            return (cap, "ScaleUpLimit") if desired > cap else (desired, "DesiredWithinRange")
        return (maximum, "TooManyReplicas") if desired > maximum else (desired, "DesiredWithinRange")
    if desired < current:
        floor = min(scale_down_limit(current, ups, downs, down_rules, now), current)
        if minimum < floor:
            return (floor, "ScaleDownLimit") if desired < floor else (desired, "DesiredWithinRange")
        return (minimum, "TooFewReplicas") if desired < minimum else (desired, "DesiredWithinRange")
    return desired, "DesiredWithinRange"


def record_event(events: Sequence[TimedInt], change: int, now: float, rules: ScalingRules) -> tuple[TimedInt, ...]:
    """Remember a scale event; forget those older than the direction's longest policy period."""
    cutoff = now - rules.longest_period
    return (*(e for e in events if e[0] > cutoff), (now, change))
