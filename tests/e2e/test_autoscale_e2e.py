"""The whole autoscaling loop: real operator, real control plane, every pod backed by a real Triton.

The operator (`meridian run`, autoscaling every 3 s) scrapes http://<podIP>:8002/metrics of each Running
pod exactly as in production; kwok gives pods loopback IPs, and the test's pod backer runs a real
tritonserver on each pod IP (ports 8000-8002) serving the model repository from the ConfigMap the
operator rendered, plus the model.py the pvc:// storage would hold: a python model sleeping
SERVICE_SECONDS per batch. tritonclient load through the backed pods (round-robin, as the Service)
makes requests queue; the replica count must follow it up, then back down after the window.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tests.fixtures_operator import Mdeps, wait_for
from tests.fixtures_triton import PodBackerFactory
from tests.load import Load

from meridian.render.names import regional_name
from meridian.runtime.layout import VERSION
from meridian.sim.triton import doubling_model, write_repository

pytestmark = pytest.mark.e2e

NAME = "echo"
SELECTOR = f"serving.meridian.dev/model-deployment={NAME}"
SERVICE_SECONDS = 0.25  # per batch of up to MAX_BATCH: one replica serves ~16 requests/s
MAX_BATCH = 4
CLIENTS = 16  # closed loop, thinking THINK_SECONDS: about twice what one replica can take
THINK_SECONDS = 0.25
TARGET = 1.0
DOWN_WINDOW = 10  # spec.autoscaling.scaleDownStabilizationSeconds
INTERVAL = 3  # MERIDIAN_AUTOSCALE_INTERVAL_SECONDS of the test operator
MAX_REPLICAS = 4


def spec() -> dict[str, Any]:
    return {
        "model": {"format": "python", "storageUri": f"pvc://models/{NAME}"},
        "runtime": {"maxBatchSize": MAX_BATCH},
        "resources": {"gpu": {"products": ["H100-80GB-HBM3"]}, "cpu": "1", "memory": "1Gi"},
        "replicas": 1,
        "autoscaling": {
            "enabled": True,
            "minReplicas": 1,
            "maxReplicas": MAX_REPLICAS,
            "metric": "queueComputeRatio",
            "target": TARGET,
            "scaleDownStabilizationSeconds": DOWN_WINDOW,
        },
        "placement": {"residency": ["EU"], "regions": [{"name": "gra"}]},
    }


@pytest.fixture
def models_claim(k8s: client.ApiClient, namespace: str) -> Iterator[str]:
    """A bound PVC `models` (what pvc://models/... mounts), so the pods can be scheduled."""
    core: Any = client.CoreV1Api(k8s)  # plain dict bodies, as kubectl apply would send
    pv = f"models-{namespace}"
    pv_body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": pv},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadOnlyMany"],
            "storageClassName": "",
            "hostPath": {"path": "/srv/models"},
            "claimRef": {"namespace": namespace, "name": "models"},
        },
    }
    claim: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "models"},
        "spec": {
            "accessModes": ["ReadOnlyMany"],
            "storageClassName": "",
            "volumeName": pv,
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    core.create_persistent_volume(pv_body)
    core.create_namespaced_persistent_volume_claim(namespace, claim)
    wait_for("the models claim to bind", lambda: claim_phase(core, namespace) == "Bound", timeout=30)
    yield "models"
    try:
        core.delete_persistent_volume(pv)
    except ApiException as e:
        if e.status != 404:
            raise


def claim_phase(core: client.CoreV1Api, namespace: str) -> str | None:
    status: Any = core.read_namespaced_persistent_volume_claim("models", namespace).status
    return None if status is None else str(status.phase)


def repository_from_cluster(m: Mdeps, root: Path) -> Path:
    """The pod's model repository: the operator's ConfigMap (keys a__b → a/b) plus model.py from storage."""
    maps: list[Any] = m.core.list_namespaced_config_map(m.ns, label_selector=SELECTOR).items
    assert len(maps) == 1, [c.metadata.name for c in maps]
    files = {key.replace("__", "/"): text for key, text in (maps[0].data or {}).items()}
    assert f"{NAME}/config.pbtxt" in files, files
    files[f"{NAME}/{VERSION}/model.py"] = doubling_model(SERVICE_SECONDS)
    return write_repository(root, files)


def live_pods(m: Mdeps) -> list[Any]:
    pods: list[Any] = m.core.list_namespaced_pod(m.ns, label_selector=SELECTOR).items
    return [p for p in pods if p.status.phase == "Running" and not p.metadata.deletion_timestamp]


class Trace:
    """What the ModelDeployment said over time (printed on failure and with -s)."""

    def __init__(self, m: Mdeps) -> None:
        self.m = m
        self.started = time.time()
        self.rows: list[tuple[float, int, dict[str, Any], int]] = []
        self.runtime_at: float | None = None  # when status.runtime first said the model is ready

    def when(self, predicate: Callable[[dict[str, Any]], bool]) -> Callable[[], dict[str, Any] | None]:
        """A wait_for probe: the status once predicate(status) holds."""

        def probe() -> dict[str, Any] | None:
            status = self.observe()
            return status if predicate(status) else None

        return probe

    def observe(self) -> dict[str, Any]:
        status = self.m.get(NAME).get("status") or {}
        pods = len(live_pods(self.m))
        if self.runtime_at is None and (status.get("runtime") or {}).get("modelReady"):
            self.runtime_at = time.time() - self.started
        row = (
            time.time() - self.started,
            int(status.get("desiredReplicas") or 0),
            status.get("autoscaling") or {},
            pods,
        )
        if not self.rows or self.rows[-1][1:] != row[1:]:
            print(self.line(row))
        self.rows.append(row)
        return status

    @staticmethod
    def line(row: tuple[float, int, dict[str, Any], int]) -> str:
        at, desired, a, pods = row
        return (
            f"t={at:5.1f}s desiredReplicas={desired} pods={pods} {a.get('metric')}={a.get('currentValue')} "
            f"recommended={a.get('recommendedReplicas')} lastScaleTime={a.get('lastScaleTime')}"
        )

    def __str__(self) -> str:
        return "\n".join(self.line(r) for r in self.rows)


def parse_time(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def test_replicas_follow_real_triton_load_up_and_back_down(
    mdeps: Mdeps, models_claim: str, pod_backer: PodBackerFactory, tmp_path: Path
) -> None:
    created = mdeps.create(NAME, spec())
    assert created["metadata"]["generation"] == 1
    trace = Trace(mdeps)
    wait_for("the first pod to run", lambda: len(live_pods(mdeps)) == 1, timeout=60)
    repo = repository_from_cluster(mdeps, tmp_path / "repository")
    backer = pod_backer(mdeps.ns, SELECTOR, repo)
    first = wait_for("Triton on the first pod's IP", backer.addresses, timeout=60)
    assert first[0].startswith("127.40.") and first[0].endswith(":8000"), first
    status = trace.observe()
    assert status["desiredReplicas"] == 1

    load = Load(NAME, backer.addresses, concurrency=CLIENTS, think_seconds=THINK_SECONDS)
    try:
        # Under load the operator scales up: status first, then a second Deployment replica, pod and server.
        load.start()
        up = wait_for("a scale-up", trace.when(lambda s: s["desiredReplicas"] > 1), timeout=45)
        scaled_up_after = time.time() - load.started_at
        wait_for("the new pods to be backed", lambda: len(backer.addresses()) >= up["desiredReplicas"], timeout=45)
        peak = up["desiredReplicas"]
        for _ in range(3 * INTERVAL):  # a few evaluations with the new replicas serving their share
            peak = max(peak, trace.observe()["desiredReplicas"])
            time.sleep(1)
        at_peak = trace.observe()
        served = dict(load.stats.ok)
    finally:
        stats = load.stop()
    stopped = time.time()

    a = up["autoscaling"]
    assert a["metric"] == "queueComputeRatio"
    assert a["currentValue"] > TARGET, a
    assert a["recommendedReplicas"] == up["desiredReplicas"] > 1
    assert 1 < peak <= MAX_REPLICAS
    assert max(r[3] for r in trace.rows) > 1, f"more pods ran: {trace}"
    assert all(1 <= r[1] <= MAX_REPLICAS and r[3] <= MAX_REPLICAS for r in trace.rows), trace
    assert parse_time(a["lastScaleTime"]) >= load.started_at - 1
    assert at_peak["desiredReplicas"] > 1, trace
    assert len(served) > 1 and all(n > 0 for n in served.values()), f"the new replicas served too: {served}"
    deployments = mdeps.deployments(NAME)
    assert (
        list(deployments) == [regional_name(NAME, "gra")] and deployments[regional_name(NAME, "gra")].spec.replicas > 1
    )
    ups = [e.message for e in mdeps.events(NAME) if e.reason == "ScaledUp"]
    assert any(m.startswith("1 → ") and "queueComputeRatio" in m for m in ups), ups

    # Load gone: the metric drops to 0 at once, the count holds for the window, then returns to minReplicas.
    down = wait_for("a scale-down to 1", trace.when(lambda s: s["desiredReplicas"] == 1), timeout=60)
    scaled_down_after = time.time() - stopped
    assert down["autoscaling"]["recommendedReplicas"] == 1
    assert down["autoscaling"]["currentValue"] == 0.0
    assert parse_time(down["autoscaling"]["lastScaleTime"]) >= stopped + DOWN_WINDOW - INTERVAL - 1, (
        f"scaled down before the window could pass: {trace}"
    )
    wait_for("one pod, one server", lambda: len(live_pods(mdeps)) == 1 and len(backer.addresses()) == 1, timeout=60)
    downs = [e for e in mdeps.events(NAME) if e.reason == "ScaledDown"]
    assert any(" → 1 replicas: queueComputeRatio = 0 " in e.message for e in downs), [e.message for e in downs]
    wait_for(
        "the Deployment back at 1", lambda: mdeps.deployments(NAME)[regional_name(NAME, "gra")].spec.replicas == 1, 30
    )

    # The operator never wrote the spec: GitOps sees no drift.
    final = mdeps.get(NAME)
    assert final["metadata"]["generation"] == 1 and final["spec"]["replicas"] == 1
    assert final["spec"] == created["spec"]

    # status.runtime: the runtime probe read the model's metadata from a pod through tritonclient.
    def runtime() -> dict[str, Any] | None:
        r = (mdeps.get(NAME).get("status") or {}).get("runtime")
        return r if r and r.get("modelReady") else None

    seen = wait_for("status.runtime from Triton", runtime, timeout=45)
    runtime_at = trace.runtime_at if trace.runtime_at is not None else time.time() - trace.started
    assert seen["modelReady"] is True and seen["modelVersions"] == [VERSION], seen
    assert seen["platform"] == "python" and seen["serverVersion"] == "2.51.0", seen
    assert stats.errors <= CLIENTS, f"{stats.errors} failed requests, last: {stats.last_error}"
    pods = [(round(t - trace.started, 1), what, ip) for t, what, _, ip in backer.history]
    print(
        f"requests {stats.total_ok} (errors {stats.errors}), mean latency {stats.mean_latency:.2f}s, served per pod "
        f"{served}; scale-up 1 → {up['desiredReplicas']} {scaled_up_after:.1f}s after the load started "
        f"(queueComputeRatio {a['currentValue']:.2f}); peak {peak}; back to 1 {scaled_down_after:.1f}s after it "
        f"stopped; status.runtime ready {runtime_at:.0f}s after creation; pod servers: {pods}; backer errors: "
        f"{backer.errors}"
    )
