"""The autoscaler against real Triton servers under real load: scale up under load, down after the window.

Real pieces only: Triton processes (the nvidia-pytriton wheel) serving the python-format repository
Meridian generates, with a model that sleeps SERVICE_SECONDS per batch; closed-loop tritonclient
load (tests/load.py); the operator's metric source (ScrapeSource, reading each server's /metrics
like a pod's port 8002); and the operator's recommender (`step`, default policy). The test plays the
rest of the operator: every tick it passes the replica total it last acted on, and acts on the
answer by starting servers (not ready until Triton answers, like a starting pod) or stopping them.
Each server has a loopback address of its own and Triton's standard ports, as pods have.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from tests.fixtures_triton import TritonFactory, loopback_hosts, python_repository
from tests.load import Load

from meridian.api.modeldeployment import ModelDeployment, ScalingMetric
from meridian.autoscale import AutoscaleState, Recommendation, step
from meridian.autoscale.sources import PodRef, ScrapeSource
from meridian.sim.triton import TritonServer, doubling_model

pytestmark = pytest.mark.integration

SERVICE_SECONDS = 0.25  # per batch of up to MAX_BATCH requests: one replica serves ~16 requests/s
MAX_BATCH = 4
CLIENTS = 16  # closed loop, thinking THINK_SECONDS: about twice what one replica can take
THINK_SECONDS = 0.25
MAX_REPLICAS = 3
DOWN_WINDOW = 6  # spec.autoscaling.scaleDownStabilizationSeconds
TICK = 1.0  # seconds between evaluations (the operator's default is 15 s)
HTTP_PORT, GRPC_PORT, METRICS_PORT = 8000, 8001, 8002  # Triton's standard ports, each on its own address


def deployment(metric: ScalingMetric, target: float, desired: int) -> ModelDeployment:
    """The autoscaled ModelDeployment as the operator reads it, with status.desiredReplicas = desired."""
    return ModelDeployment.model_validate(
        {
            "metadata": {"name": "double", "namespace": "test"},
            "spec": {
                "model": {"format": "python", "storageUri": "pvc://models/double"},
                "runtime": {"maxBatchSize": MAX_BATCH},
                "autoscaling": {
                    "enabled": True,
                    "minReplicas": 1,
                    "maxReplicas": MAX_REPLICAS,
                    "metric": metric,
                    "target": target,
                    "scaleDownStabilizationSeconds": DOWN_WINDOW,
                },
            },
            "status": {"desiredReplicas": desired},
        }
    )


@dataclass
class Replica:
    """One server standing for a pod: ready once Triton answers on its address."""

    name: str
    server: TritonServer
    host: str
    ready: bool = False
    task: asyncio.Task[None] | None = None

    @property
    def pod(self) -> PodRef:
        return PodRef(name=self.name, ip=self.host, ready=self.ready, uid=self.name)


@dataclass
class Replicas:
    """The servers of one ModelDeployment, started and stopped as the recommendation says."""

    factory: TritonFactory
    repository: Path
    hosts: Iterator[str]
    live: list[Replica] = field(default_factory=list)
    stopping: list[asyncio.Task[int | None]] = field(default_factory=list)
    started: int = 0

    async def _start(self, replica: Replica) -> None:
        await asyncio.to_thread(
            replica.server.start,
            self.repository,
            host=replica.host,
            http_port=HTTP_PORT,
            grpc_port=GRPC_PORT,
            metrics_port=METRICS_PORT,
        )
        replica.ready = True

    def scale_to(self, count: int) -> None:
        """Start replicas (in the background) or stop the newest ones, as a Deployment would."""
        while len(self.live) < count:
            replica = Replica(f"double-{self.started}", self.factory(), next(self.hosts))
            self.started += 1
            replica.task = asyncio.create_task(self._start(replica))
            self.live.append(replica)
        while len(self.live) > count:
            gone = self.live.pop()
            gone.ready = False
            self.stopping.append(asyncio.create_task(asyncio.to_thread(gone.server.stop)))

    async def wait_ready(self) -> None:
        async with asyncio.timeout(60):
            await asyncio.gather(*(r.task for r in self.live if r.task))

    def pods(self) -> list[PodRef]:
        return [r.pod for r in self.live]

    def addresses(self) -> list[str]:
        """Where the Service would send requests: the ready replicas."""
        return [f"{r.host}:{HTTP_PORT}" for r in list(self.live) if r.ready]

    async def close(self) -> None:
        await asyncio.gather(*(r.task for r in self.live if r.task), *self.stopping, return_exceptions=True)


@dataclass(frozen=True)
class Tick:
    at: float  # seconds since the load started
    rec: Recommendation
    ready: int  # replicas serving when the samples were taken

    def __str__(self) -> str:
        value = "n/a" if self.rec.metric_value is None else f"{self.rec.metric_value:.2f}"
        return (
            f"t={self.at:5.1f}s ready={self.ready} current={self.rec.current} {self.rec.metric}={value} "
            f"raw={self.rec.raw} desired={self.rec.desired} ({self.rec.reason})"
        )


@pytest.mark.parametrize(("metric", "target"), [("queueComputeRatio", 1.0), ("pendingRequests", 2.0)])
async def test_scales_up_under_load_and_down_only_after_the_stabilization_window(
    metric: ScalingMetric, target: float, triton_server: TritonFactory, tmp_path: Path
) -> None:
    repo = python_repository(tmp_path / "repository", deployment(metric, target, 1), doubling_model(SERVICE_SECONDS))
    replicas = Replicas(triton_server, repo, iter(loopback_hosts(MAX_REPLICAS + 2, METRICS_PORT)))
    ticks: list[Tick] = []
    current = 1
    state = AutoscaleState()
    replicas.scale_to(current)
    await replicas.wait_ready()
    load = Load("double", replicas.addresses, concurrency=CLIENTS, think_seconds=THINK_SECONDS)

    async with aiohttp.ClientSession() as session:
        source = ScrapeSource(session, port=METRICS_PORT)

        async def tick() -> Tick:
            nonlocal current, state
            ready = len(replicas.addresses())
            now = time.time()
            md = deployment(metric, target, current)
            rec, state = await step(md, replicas.pods(), source, state, now, policy=md.spec.autoscaling.policy)
            t = Tick(now - load.started_at, rec, ready)
            ticks.append(t)
            print(t)  # the trace of the run, shown by pytest -s or on failure
            if rec.desired != current:
                current = rec.desired
                replicas.scale_to(current)
            await asyncio.sleep(TICK)
            return t

        try:
            # Under load: the first evaluation with a rate (the second scrape) scales up.
            load.start()
            while current == 1:
                await tick()
                assert len(ticks) <= 8, f"no scale-up under load:\n{trace(ticks)}"
            up = ticks[-1]
            assert up.rec.current == 1 and up.rec.desired > 1 and up.rec.direction == "up"
            assert up.rec.metric_value is not None and up.rec.metric_value > target
            # The policy's own reason, or the cap when the queue asks for more than maxReplicas.
            capped = up.rec.reason == "TooManyReplicas" and up.rec.desired == MAX_REPLICAS < (up.rec.raw or 0)
            assert up.rec.reason.endswith("ScaleUp") or capped, up.rec

            # The new replicas start (not ready meanwhile) and take their share; the count holds or grows.
            await replicas.wait_ready()
            for _ in range(4):
                await tick()
            peak = current
            assert all(t.rec.desired >= t.rec.current for t in ticks), trace(ticks)
            assert all(load.stats.ok.get(a) for a in replicas.addresses()), f"every replica serves: {load.stats}"

            # Load stops: the metric falls at once, the count holds for the window, then drops to minReplicas.
            stats = load.stop()
            stopped = time.time() - load.started_at
            while current > 1:
                await tick()
                assert ticks[-1].at - stopped < 45, f"no scale-down after the load stopped:\n{trace(ticks)}"
            for _ in range(2):
                await tick()
        finally:
            load.stop()
            await replicas.close()

    # Never below a recommendation of the window: every scale-down waited out each higher one.
    for t in ticks:
        window = [u.rec.raw for u in ticks if t.at - DOWN_WINDOW < u.at <= t.at and u.rec.raw is not None]
        if t.rec.direction == "down":
            assert t.rec.desired >= max(window), f"scaled down inside the window at t={t.at:.1f}s:\n{trace(ticks)}"
    after = [t for t in ticks if t.at > stopped]
    down = next(t for t in after if t.rec.direction == "down")
    assert all(t.rec.desired == peak for t in after if t.at < down.at), trace(ticks)
    # The recommendation itself fell before the count did: the window, not the metric, held the replicas.
    held = [t for t in after if t.rec.raw is not None and t.rec.raw < t.rec.current == t.rec.desired > 1]
    assert held and all(t.rec.reason == "ScaleDownStabilized" for t in held), trace(ticks)
    # ... and once the window has passed since the last recommendation above minReplicas, the count is there.
    at_min = next(t for t in after if t.rec.desired == 1)
    last_high = max(t.at for t in ticks if t.at < at_min.at and t.rec.raw is not None and t.rec.raw > 1)
    assert DOWN_WINDOW <= at_min.at - last_high <= DOWN_WINDOW + 2 * TICK + 1, trace(ticks)
    assert ticks[-1].rec.desired == 1 and ticks[-1].rec.metric_value == 0.0, "no queue once the load is gone"
    assert stats.errors == 0, stats.last_error
    print(
        f"{metric}: {stats.total_ok} requests, mean latency {stats.mean_latency:.2f}s; 1 → {up.rec.desired} at "
        f"t={up.at:.1f}s ({metric} = {up.rec.metric_value:.2f}, target {target}); peak {peak}; load stopped at "
        f"t={stopped:.1f}s; first scale-down at t={down.at:.1f}s; last recommendation above 1 at t={last_high:.1f}s; "
        f"at minReplicas at t={at_min.at:.1f}s"
    )


def trace(ticks: list[Tick]) -> str:
    return "\n".join(str(t) for t in ticks)
