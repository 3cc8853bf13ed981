"""Direct scrape: fetch every ready pod's Triton /metrics (port 8002) at each evaluation.

No Prometheus needed. Pods are fetched concurrently with a short timeout, so one hung pod costs at
most `timeout` seconds; an unreachable pod or unparsable text is a "missing" pod, which the
recommender treats conservatively. Rates come from consecutive scrapes of the same pod, so the first
evaluation after a pod turns ready has no rate for it yet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import aiohttp

from meridian.api.modeldeployment import ScalingMetric
from meridian.autoscale.samples import PodSample
from meridian.autoscale.sources.base import PodRef
from meridian.autoscale.sources.derive import pod_sample
from meridian.autoscale.sources.rates import CounterRateTracker
from meridian.autoscale.sources.triton import parse

TRITON_METRICS_PORT = 8002


def metrics_url(ip: str, port: int = TRITON_METRICS_PORT) -> str:
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}/metrics"


class ScrapeSource:
    """A MetricSource that reads Triton directly; keep one per ModelDeployment (it remembers counters).

    Each call forgets the counters of pods not passed in, so pass every pod of the ModelDeployment.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        port: int = TRITON_METRICS_PORT,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._port = port
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock
        self.tracker = CounterRateTracker()

    async def fetch(self, pod: PodRef) -> str | None:
        """The pod's metrics text, or None if it cannot be had in time."""
        if not pod.ip:
            return None
        try:
            async with self._session.get(metrics_url(pod.ip, self._port), timeout=self._timeout) as resp:
                if resp.status != 200:
                    return None
                return await resp.text()
        except (aiohttp.ClientError, TimeoutError, UnicodeDecodeError):
            return None

    async def samples(
        self, pods: Sequence[PodRef], metric: ScalingMetric, *, namespace: str = "", model: str | None = None
    ) -> list[PodSample]:
        ready = [p for p in pods if p.ready]
        texts = await asyncio.gather(*(self.fetch(p) for p in ready))
        now = self._clock()
        by_key: dict[str, PodSample] = {}
        for pod, text in zip(ready, texts, strict=True):
            by_key[pod.key] = self._sample(pod, metric, text, model, now)
        self.tracker.retain(p.key for p in pods)
        return [by_key.get(p.key) or PodSample(pod=p.name, ready=False) for p in pods]

    def _sample(self, pod: PodRef, metric: ScalingMetric, text: str | None, model: str | None, now: float) -> PodSample:
        if text is None:
            return PodSample(pod=pod.name, ready=True)
        try:
            scrape = parse(text, model)
        except ValueError:  # not Prometheus text: treat as unreachable
            return PodSample(pod=pod.name, ready=True)
        return pod_sample(pod.name, metric, scrape, self.tracker.observe(pod.key, scrape.counters, now))
