"""The Prometheus metric source against a real Prometheus scraping real Triton servers under load.

Prometheus (Debian's package) scrapes two Triton processes every second, with the namespace/pod
labels Kubernetes service discovery would give; PrometheusSource asks it the PromQL Meridian uses
(MERIDIAN_PROMETHEUS_URL) and the recommender turns the answer into a scale-up.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
from tests.fixtures_prometheus import start_prometheus
from tests.fixtures_triton import TritonFactory, loopback_hosts, python_repository
from tests.load import Load
from tests.processes import stop

from meridian.api.modeldeployment import ModelDeployment
from meridian.autoscale import AutoscaleState, step
from meridian.autoscale.sources import PodRef, PrometheusSource
from meridian.sim.triton import doubling_model

pytestmark = pytest.mark.integration
PODS = ("double-0", "double-1")


def deployment(metric: str) -> ModelDeployment:
    return ModelDeployment.model_validate(
        {
            "metadata": {"name": "double", "namespace": "bank"},
            "spec": {
                "model": {"format": "python", "storageUri": "pvc://models/double"},
                "runtime": {"maxBatchSize": 4},
                "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 6, "metric": metric, "target": 1.0},
            },
            "status": {"desiredReplicas": 2},
        }
    )


def test_prometheus_source_sees_real_triton_load_and_scales_up(
    prometheus: tuple[str, Path], triton_server: TritonFactory, tmp_path: Path
) -> None:
    binary, workdir = prometheus
    repo = python_repository(tmp_path / "repository", deployment("requestRate"), doubling_model(0.25))
    hosts = loopback_hosts(len(PODS), 8002)
    servers = [
        triton_server().start(repo, host=host, http_port=8000, grpc_port=8001, metrics_port=8002) for host in hosts
    ]
    targets = [
        {"targets": [f"{h}:8002"], "labels": {"namespace": "bank", "pod": p}} for p, h in zip(PODS, hosts, strict=True)
    ]
    proc, url = start_prometheus(binary, workdir, targets)
    pods = [PodRef(name=p, ip=h, ready=True, uid=p) for p, h in zip(PODS, hosts, strict=True)]
    load = Load("double", [f"{h}:8000" for h in hosts], concurrency=24, think_seconds=0.1).start()
    try:
        time.sleep(12)  # several scrapes under load, so rate() over the window has points

        async def ask() -> dict[str, dict[str, float | None]]:
            async with aiohttp.ClientSession() as session:
                source = PrometheusSource(session, url)
                out: dict[str, dict[str, float | None]] = {}
                for metric in ("requestRate", "queueComputeRatio", "pendingRequests", "inFlightRequests"):
                    samples = await source.samples(pods, metric, namespace="bank", model="double")  # type: ignore[arg-type]
                    out[metric] = {s.pod: s.value for s in samples}
                rec, _ = await step(
                    deployment("queueComputeRatio"),
                    pods,
                    source,
                    AutoscaleState(),
                    time.time(),
                    policy="hpa",
                    model="double",
                )
                out["recommended"] = {"replicas": float(rec.desired)}
                return out

        seen = asyncio.run(ask())
    finally:
        load.stop()
        stop(proc)
        for s in servers:
            s.stop()

    assert load.stats.total_ok > 50
    for pod in PODS:
        # 24 clients on two replicas that take ~16 requests/s each: both serve, requests queue
        assert (seen["requestRate"][pod] or 0) > 0.5, seen
        assert (seen["queueComputeRatio"][pod] or 0) > 0.1, seen
        assert (seen["pendingRequests"][pod] or 0) >= 1, seen
        # no TensorRT-LLM here: running is the mean executing, from the compute-time rate, plus the queue
        assert (seen["inFlightRequests"][pod] or 0) >= 1.5, seen
    assert seen["recommended"]["replicas"] > 2, seen
