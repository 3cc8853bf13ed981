"""Direct scrape: fetch every ready pod's Triton /metrics (port 8002) at each evaluation.

No Prometheus needed. Pods are fetched concurrently with a short timeout, so one hung pod costs at
most `timeout` seconds, and at most `max_bytes` of a body are ever read: a tenant's image serving a
huge or endless /metrics cannot run the operator out of memory. An unreachable, oversized, slow or
unparsable pod is a "missing" pod, which the recommender treats conservatively, and `problems`
says which and why (status.autoscaling.metricProblems). Rates come from consecutive scrapes of the
same pod, so the first evaluation after a pod turns ready has no rate for it yet.
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
MAX_METRICS_BYTES = 4 * 1024 * 1024  # Triton's own /metrics is tens of KiB, even with many models


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
        max_bytes: int = MAX_METRICS_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._port = port
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._seconds = timeout
        self._max_bytes = max_bytes
        self._clock = clock
        self.tracker = CounterRateTracker()
        self._problems: dict[str, str] = {}

    def problems(self) -> list[str]:
        """Why pods of the last evaluation gave no metrics, one sentence each (sorted by pod)."""
        return [f"pod {pod}: {why}" for pod, why in sorted(self._problems.items())]

    async def fetch(self, pod: PodRef) -> str | None:
        """The pod's metrics text, or None if it cannot be had in time and within the size cap."""
        if not pod.ip:
            return None
        try:
            async with self._session.get(metrics_url(pod.ip, self._port), timeout=self._timeout) as resp:
                if resp.status != 200:
                    self._problems[pod.name] = f"/metrics answered HTTP {resp.status}"
                    return None
                if (resp.content_length or 0) > self._max_bytes:
                    self._problems[pod.name] = f"/metrics is {resp.content_length} bytes, over {self._max_bytes}"
                    return None
                body = bytearray()
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > self._max_bytes:
                        self._problems[pod.name] = f"/metrics is over {self._max_bytes} bytes; not read"
                        return None
                return body.decode("utf-8")
        except TimeoutError:
            self._problems[pod.name] = f"/metrics did not answer within {self._seconds:g}s"
        except (aiohttp.ClientError, UnicodeDecodeError) as e:
            self._problems[pod.name] = f"/metrics unreadable: {type(e).__name__}"
        return None

    async def samples(
        self, pods: Sequence[PodRef], metric: ScalingMetric, *, namespace: str = "", model: str | None = None
    ) -> list[PodSample]:
        ready = [p for p in pods if p.ready]
        self._problems = {}
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
            self._problems[pod.name] = "/metrics is not Prometheus text"
            return PodSample(pod=pod.name, ready=True)
        return pod_sample(pod.name, metric, scrape, self.tracker.observe(pod.key, scrape.counters, now))
