"""The HPA's proportional rule for a per-pod average metric, with its treatment of missing data.

desired = ceil(ready × average ÷ target), unless |average ÷ target − 1| ≤ tolerance. This mirrors
the Kubernetes replica calculator for Pods metrics (calcPlainMetricReplicas) choice for choice:

- Only ready pods with a value form the average ("usage ratio"). No such pod: no recommendation.
- Pods not ready (starting) are set aside; if the ratio says scale up, they are put back as using 0,
  so a scale-up is not repeated for replicas that are already on their way.
- Ready pods with no value ("missing") are put back as using 0 on a scale-up and exactly the target
  on a scale-down, which damps both directions.
- After filling in, the ratio is recomputed; if it is now within the tolerance or points the other
  way, nothing changes; and a result that would move against the ratio's direction is dropped too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from meridian.autoscale.samples import PodSample

DEFAULT_TOLERANCE = 0.1  # the HPA's --horizontal-pod-autoscaler-tolerance
_EPS = 1e-9  # ceil(11.000000000000002) should be 11, not 12


@dataclass(frozen=True, slots=True)
class Proposal:
    """A raw recommendation before stabilization and step limits; replicas None means no data."""

    replicas: int | None
    value: float | None
    reason: str


def ceil(x: float) -> int:
    """Ceiling that forgives float noise: a ratio of 1.1 on 10 pods asks for 11, not 12."""
    return math.ceil(x - _EPS)


def proportional(
    samples: Sequence[PodSample], target: float, current: int, tolerance: float = DEFAULT_TOLERANCE
) -> Proposal:
    """The HPA recommendation for `current` replicas whose pods reported `samples`."""
    values = [s.value for s in samples if s.ready and s.value is not None]
    missing = sum(1 for s in samples if s.missing)
    unready = sum(1 for s in samples if not s.ready)
    if not values:
        return Proposal(None, None, "NoMetrics")

    usage = sum(values) / len(values)
    ratio = usage / target
    rebalance_unready = unready > 0 and ratio > 1.0

    if not rebalance_unready and missing == 0:
        if abs(1.0 - ratio) <= tolerance:
            return Proposal(current, usage, "WithinTolerance")
        return Proposal(ceil(ratio * len(values)), usage, "Proportional")

    filled = list(values)
    if missing:
        # Scale-down: missing pods are at target (hold them); scale-up: at 0 (do not over-react).
        filled += [target if ratio < 1.0 else 0.0] * missing
    if rebalance_unready:
        filled += [0.0] * unready
    new_ratio = sum(filled) / len(filled) / target

    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return Proposal(current, usage, "MissingDataHolds")
    replicas = ceil(new_ratio * len(filled))
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return Proposal(current, usage, "MissingDataHolds")
    return Proposal(replicas, usage, "ProportionalWithMissingData")
