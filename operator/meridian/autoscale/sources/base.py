"""What a metric source is asked about (pods) and the interface both sources share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from meridian.api.modeldeployment import ScalingMetric
from meridian.autoscale.samples import PodSample


@dataclass(frozen=True, slots=True)
class PodRef:
    """One pod of a ModelDeployment as the operator sees it: name, IP, readiness, identity.

    uid tells a replacement pod from the old one with the same name; counters are tracked by it.
    """

    name: str
    ip: str | None = None
    ready: bool = False
    uid: str = ""

    @property
    def key(self) -> str:
        return self.uid or self.name


class MetricSource(Protocol):
    """Turns a ModelDeployment's pods into PodSamples for one metric (not-ready pods: ready=False)."""

    async def samples(
        self, pods: Sequence[PodRef], metric: ScalingMetric, *, namespace: str, model: str | None = None
    ) -> list[PodSample]: ...

    def problems(self) -> list[str]:
        """Why some pods of the last call gave no sample (too large, too slow); empty when none."""
        ...
