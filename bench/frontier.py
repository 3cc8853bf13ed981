"""Pareto frontiers of replica-hours against SLO-violation minutes, and the benchmark's headline (pure).

A setting is on its policy's frontier when no other setting of that policy costs no more replica-hours
and misses the SLO for no more minutes, and is better in one of them. The headline compares a
candidate setting with the cheapest baseline setting that misses the SLO for no more minutes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Point:
    """One policy setting's outcome on one trace."""

    family: str
    target: float
    replica_hours: float
    violation_minutes: int


def frontier(points: Iterable[Point]) -> list[Point]:
    """The non-dominated points, cheapest first."""
    out: list[Point] = []
    for p in sorted(points, key=lambda p: (p.replica_hours, p.violation_minutes)):
        if not out or p.violation_minutes < out[-1].violation_minutes:
            out.append(p)
    return out


@dataclass(frozen=True, slots=True)
class Headline:
    """The candidate's replica-hours ÷ the best baseline's that misses the SLO for no more minutes."""

    candidate: Point
    baseline: Point | None  # None: no baseline setting met the candidate's violation minutes

    @property
    def ratio(self) -> float | None:
        return self.candidate.replica_hours / self.baseline.replica_hours if self.baseline else None


def headline(candidate: Point, baselines: Sequence[Point]) -> Headline:
    eligible = [b for b in baselines if b.violation_minutes <= candidate.violation_minutes]
    best = min(eligible, key=lambda b: (b.replica_hours, b.violation_minutes), default=None)
    return Headline(candidate, best)
