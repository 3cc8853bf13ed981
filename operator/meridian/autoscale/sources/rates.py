"""Counters to increases between scrapes, correct across restarts and resets (as Prometheus rate()).

Per pod and per series the last (time, value) is kept. The increase since then is new − old, or, if
the counter went down (Triton restarted, the pod was replaced under the same key), the new value
itself: everything counted since the restart. A series seen for the first time has no increase yet,
and a pod seen for the first time has no rate: one scrape is not a window.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from meridian.autoscale.sources.triton import COUNTERS, SeriesKey


@dataclass(frozen=True, slots=True)
class Increase:
    """How much each counter family grew over `seconds`."""

    seconds: float
    by_family: Mapping[str, float]

    def of(self, family: str) -> float:
        return self.by_family.get(family, 0.0)

    def rate(self, family: str) -> float:
        return self.of(family) / self.seconds


def increase(previous: float, current: float) -> float:
    """Growth of one counter between two samples; a drop means a reset, so count from zero."""
    return current - previous if current >= previous else current


class CounterRateTracker:
    """Remembers each pod's counters between scrapes (the one stateful piece of a source)."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, Mapping[SeriesKey, float]]] = {}

    def observe(self, pod: str, counters: Mapping[SeriesKey, float], now: float) -> Increase | None:
        """Record this scrape of `pod`; return the increase since its previous one (None the first time)."""
        previous = self._last.get(pod)
        self._last[pod] = (now, dict(counters))
        if previous is None or now <= previous[0]:
            return None
        then, old = previous
        totals = dict.fromkeys(COUNTERS, 0.0)
        for key, value in counters.items():
            if key in old:
                totals[key[0]] = totals.get(key[0], 0.0) + increase(old[key], value)
        return Increase(now - then, totals)

    def retain(self, pods: Iterable[str]) -> None:
        """Forget pods not in `pods` (deleted or replaced), so memory follows the fleet."""
        keep = set(pods)
        for pod in list(self._last):
            if pod not in keep:
                del self._last[pod]

    def forget(self, pod: str) -> None:
        self._last.pop(pod, None)

    def __contains__(self, pod: object) -> bool:
        return pod in self._last
