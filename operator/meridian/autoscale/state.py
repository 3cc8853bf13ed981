"""The memory of one ModelDeployment's autoscaler, passed in and returned by every evaluation.

The HPA keeps this in the controller's memory; here it is an explicit immutable value, so the
recommender stays a pure function and the operator decides where to keep it (kopf memo per object,
or an annotation, via to_dict/from_dict). Timestamps are seconds on the caller's clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

TimedInt = tuple[float, int]
TimedFloat = tuple[float, float]


@dataclass(frozen=True, slots=True)
class AutoscaleState:
    """Recommendations for the stabilization windows, scale events for the step limits, load history.

    recommendations: (time, unstabilized recommendation) of recent evaluations, as the HPA keeps them.
    scale_up_events / scale_down_events: (time, replicas added / removed) by recent scale events.
    demand: (time, served load in concurrent sequences): the meridian policy smooths and trends it.
    pending: (time, total pending requests) at the last evaluation, to see a queue grow.
    """

    recommendations: tuple[TimedInt, ...] = ()
    scale_up_events: tuple[TimedInt, ...] = ()
    scale_down_events: tuple[TimedInt, ...] = ()
    demand: tuple[TimedFloat, ...] = ()
    pending: TimedFloat | None = None

    @property
    def fresh(self) -> bool:
        """Never evaluated (new object, or the operator restarted)."""
        return not self.recommendations

    def with_(self, **changes: Any) -> AutoscaleState:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe form, for keeping the state in an annotation across operator restarts."""
        return {
            "recommendations": [list(r) for r in self.recommendations],
            "scaleUpEvents": [list(e) for e in self.scale_up_events],
            "scaleDownEvents": [list(e) for e in self.scale_down_events],
            "demand": [list(d) for d in self.demand],
            "pending": list(self.pending) if self.pending is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AutoscaleState:
        def ints(key: str) -> tuple[TimedInt, ...]:
            return tuple((float(t), int(v)) for t, v in data.get(key) or ())

        pending = data.get("pending")
        return cls(
            recommendations=ints("recommendations"),
            scale_up_events=ints("scaleUpEvents"),
            scale_down_events=ints("scaleDownEvents"),
            demand=tuple((float(t), float(v)) for t, v in data.get("demand") or ()),
            pending=(float(pending[0]), float(pending[1])) if pending else None,
        )
