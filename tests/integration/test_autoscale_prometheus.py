"""The Prometheus metric source against a real Prometheus scraping real Triton servers under load.

Prometheus (Debian's package) scrapes two Triton processes every second, with the namespace/pod
labels Kubernetes service discovery would give; PrometheusSource asks it the PromQL Meridian uses
(MERIDIAN_PROMETHEUS_URL) and the recommender turns the answer into a scale-up.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest
import yaml
from tests.fixtures_triton import TritonFactory, in_ci, loopback_hosts, python_repository
from tests.load import Load

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def prometheus(tmp_path: Path) -> tuple[str, Path]:
    """A Prometheus on a free port; the test writes its scrape config before it starts."""
    binary = shutil.which("prometheus")
    if binary is None:
        message = "prometheus is not installed (Debian package `prometheus`; .ci/run installs it)"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return binary, tmp_path


def start_prometheus(binary: str, workdir: Path, targets: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "triton",
                "static_configs": [
                    {"targets": [address], "labels": {"namespace": "bank", "pod": pod}}
                    for pod, address in targets.items()
                ],
            }
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/-/ready", timeout=1)
            return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError((workdir / "prometheus.log").read_text()[-2000:])


def test_prometheus_source_sees_real_triton_load_and_scales_up(
    prometheus: tuple[str, Path], triton_server: TritonFactory, tmp_path: Path
) -> None:
    binary, workdir = prometheus
    repo = python_repository(tmp_path / "repository", deployment("requestRate"), doubling_model(0.25))
    hosts = loopback_hosts(len(PODS), 8002)
    servers = [
        triton_server().start(repo, host=host, http_port=8000, grpc_port=8001, metrics_port=8002) for host in hosts
    ]
    proc, url = start_prometheus(binary, workdir, {pod: f"{h}:8002" for pod, h in zip(PODS, hosts, strict=True)})
    pods = [PodRef(name=p, ip=h, ready=True, uid=p) for p, h in zip(PODS, hosts, strict=True)]
    load = Load("double", [f"{h}:8000" for h in hosts], concurrency=24, think_seconds=0.1).start()
    try:
        time.sleep(12)  # several scrapes under load, so rate() over the window has points

        async def ask() -> dict[str, dict[str, float | None]]:
            async with aiohttp.ClientSession() as session:
                source = PrometheusSource(session, url)
                out: dict[str, dict[str, float | None]] = {}
                for metric in ("requestRate", "queueComputeRatio", "pendingRequests"):
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
        proc.terminate()
        proc.wait(10)
        for s in servers:
            s.stop()

    assert load.stats.total_ok > 50
    for pod in PODS:
        # 24 clients on two replicas that take ~16 requests/s each: both serve, requests queue
        assert (seen["requestRate"][pod] or 0) > 0.5, seen
        assert (seen["queueComputeRatio"][pod] or 0) > 0.1, seen
        assert (seen["pendingRequests"][pod] or 0) >= 1, seen
    assert seen["recommended"]["replicas"] > 2, seen
