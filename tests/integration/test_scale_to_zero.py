"""Scale to zero on the simulated fleet: an idle model loses its pods, and a signal that needs no pod
brings them back.

Real pieces only: the session's control plane (kube-apiserver, scheduler, controller manager, kwok
nodes), `meridian run` as a process of its own with MERIDIAN_PROMETHEUS_URL, and a real Prometheus
scraping a small HTTP endpoint standing for the Gateway: it exposes gateway_requests_total for the
model, which grows while the test "sends traffic". The wake query is that counter's rate.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from tests.fixtures_operator import Mdeps, free_port, start_operator, stop_operator, wait_for
from tests.fixtures_prometheus import start_prometheus
from tests.integration.test_modeldeployment import kubectl, spec
from tests.processes import stop

pytestmark = pytest.mark.integration

MODEL = "sleepy"
QUERY = f'sum(rate(gateway_requests_total{{model="{MODEL}"}}[3s]))'
IDLE_SECONDS = 6


class Gateway:
    """A /metrics endpoint with one counter of requests for the model, rising 10/s while traffic is on."""

    def __init__(self) -> None:
        self.traffic = False
        self._count = 0.0
        self._since = time.monotonic()
        self._lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = f'gateway_requests_total{{model="{MODEL}"}} {gateway.count()}\n'.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def count(self) -> float:
        with self._lock:
            now = time.monotonic()
            if self.traffic:
                self._count += 10.0 * (now - self._since)
            self._since = now
            return round(self._count, 3)

    def send(self, on: bool) -> None:
        self.count()  # settle the counter at the switch
        self.traffic = on


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    gw = Gateway()
    gw.thread.start()
    yield gw
    gw.server.shutdown()
    gw.server.server_close()


def pods(m: Mdeps) -> list[Any]:
    sel = f"serving.meridian.dev/model-deployment={MODEL}"
    return list(m.core.list_namespaced_pod(m.ns, label_selector=sel).items)


def autoscaling(m: Mdeps) -> dict[str, Any]:
    return dict(m.get(MODEL).get("status", {}).get("autoscaling") or {})


def idle_with_no_pods(m: Mdeps) -> dict[str, Any] | None:
    a = autoscaling(m)
    return a if a.get("idle") and not pods(m) and m.get(MODEL)["status"].get("replicas") == 0 else None


def ready_with(m: Mdeps, replicas: int) -> bool:
    status = m.get(MODEL).get("status", {})
    ready = m.condition(MODEL, "Ready") or {}
    running = [p for p in pods(m) if p.status.phase == "Running" and not p.metadata.deletion_timestamp]
    return (
        ready.get("status") == "True"
        and ready.get("reason") == "AllReplicasReady"
        and status.get("readyReplicas") == replicas
        and len(running) == replicas
        and not (status.get("autoscaling") or {}).get("idle")
    )


def test_idle_model_goes_to_zero_and_wakes_on_its_query_and_on_kubectl_scale(
    k8s: client.ApiClient,
    private_namespace: str,
    kubeconfig: Path,
    prometheus: tuple[str, Path],
    gateway: Gateway,
    tmp_path: Path,
) -> None:
    binary, workdir = prometheus
    prom, url = start_prometheus(binary, workdir, [{"targets": [gateway.address]}], job="gateway")
    m = Mdeps(k8s, private_namespace)
    env = {
        "MERIDIAN_NAMESPACES": json.dumps([m.ns]),
        "MERIDIAN_PROMETHEUS_URL": url,
        "MERIDIAN_AUTOSCALE_INTERVAL_SECONDS": "1",
    }
    op = start_operator(kubeconfig, tmp_path / "operator.log", env)
    try:
        autoscaled = {
            "enabled": True,
            "minReplicas": 0,
            "maxReplicas": 2,
            "idleSeconds": IDLE_SECONDS,
            "wakeOn": {"query": QUERY},
        }
        m.create(MODEL, spec(replicas=1, autoscaling=autoscaled))

        # No traffic: after the idle window the model has no pods, and says so and what wakes it.
        idle = wait_for("the model idle with no pods", lambda: idle_with_no_pods(m), timeout=90)
        assert idle["recommendedReplicas"] == 0 and idle["idleSince"] and idle["wakeValue"] == 0
        assert idle["wakeOn"][0] == f"{QUERY} > 0" and "kubectl scale" in idle["wakeOn"][1]
        ready = m.wait_condition(MODEL, "Ready")
        assert ready["reason"] == "ScaledToZero" and QUERY in ready["message"], ready
        assert m.condition(MODEL, "Stalled")["status"] == "False"  # type: ignore[index]
        assert m.condition(MODEL, "Reconciling")["status"] == "False"  # type: ignore[index]
        assert m.get(MODEL)["status"]["desiredReplicas"] == 0
        wait_for("a ScaledToZero event", lambda: "ScaledToZero" in {e.reason for e in m.events(MODEL)})

        # Traffic at the Gateway, where no pod is needed to see it: the model wakes and serves.
        gateway.send(True)
        wait_for("one ready replica after the wake query rose", lambda: ready_with(m, 1), timeout=90)
        woke = autoscaling(m)
        assert woke["idle"] is False and woke["wakeValue"] > 0 and "idleSince" not in woke, woke
        wait_for("a WokenUp event", lambda: "WokenUp" in {e.reason for e in m.events(MODEL)})

        # Traffic stops: idle again. Another spec edit does not wake it (a longer window, so that what
        # kubectl scale wakes stays up to be seen); `kubectl scale` wakes it to the count asked for.
        gateway.send(False)
        wait_for("the model idle again", lambda: idle_with_no_pods(m), timeout=90)
        generation = m.patch(MODEL, {"spec": {"autoscaling": {"idleSeconds": 600}}})["metadata"]["generation"]
        wait_for("the edit observed", lambda: m.get(MODEL)["status"].get("observedGeneration") == generation)
        m.wait_condition(MODEL, "Ready")
        assert idle_with_no_pods(m), "a spec edit other than spec.replicas does not wake the model"
        out = kubectl(kubeconfig, "scale", f"mdep/{MODEL}", "--replicas=2", "-n", m.ns)
        assert out.returncode == 0, out.stderr
        wait_for("two ready replicas after kubectl scale", lambda: ready_with(m, 2), timeout=90)
    except BaseException:
        print(json.dumps(m.explain(MODEL, op), indent=1, default=str))
        raise
    finally:
        stop_operator(op)
        stop(prom)


def test_a_wake_query_with_no_prometheus_stalls_the_model_naming_the_field(mdeps: Mdeps) -> None:
    """The session operator has no MERIDIAN_PROMETHEUS_URL: the API server cannot know that, the operator
    can, and says so rather than let the model go idle with nothing to wake it."""
    autoscaled = {"enabled": True, "minReplicas": 0, "wakeOn": {"query": QUERY}}
    mdeps.create(MODEL, spec(autoscaling=autoscaled))
    stalled = mdeps.wait_condition(MODEL, "Stalled")
    assert stalled["reason"] == "WakeQueryUnavailable", stalled
    assert "spec.autoscaling.wakeOn.query" in stalled["message"] and "MERIDIAN_PROMETHEUS_URL" in stalled["message"]
    assert mdeps.condition(MODEL, "Ready")["status"] == "False"  # type: ignore[index]
