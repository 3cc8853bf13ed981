"""The operator as users run it (`meridian run`, a separate process) against the session's cluster."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families
from tests.fixtures_cluster import fresh_namespace

from meridian.sim import processes

GROUP, VERSION, PLURAL = "serving.meridian.dev", "v1alpha1", "modeldeployments"
PRIVATE_PREFIX = "own-"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class OperatorProcess:
    proc: subprocess.Popen[bytes]
    metrics_port: int
    log: Path

    def metric(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        out: dict[tuple[tuple[str, str], ...], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name:
                    out[tuple(sorted(sample.labels.items()))] = sample.value
        return out

    def writes(self) -> float:
        return sum(self.metric("meridian_api_writes_total").values())

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def start_operator(kubeconfig: Path, log: Path, extra_env: dict[str, str] | None = None) -> OperatorProcess:
    port = free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "MERIDIAN_METRICS_PORT": str(port),
        "MERIDIAN_LOG_FORMAT": "json",
        "MERIDIAN_AUTOSCALE_INTERVAL_SECONDS": "3",
        **(extra_env or {}),
    }
    out = log.open("ab")
    proc = subprocess.Popen(  # gone with the test session, even one killed by a timeout
        [sys.executable, "-m", "meridian.cli", "run"],
        stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=processes.tie_to_parent,
    )  # fmt: skip
    op = OperatorProcess(proc, port, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"operator exited with {proc.returncode}:\n{op.log_tail()}")
        try:
            op.metric("meridian_reconciles_total")
            return op
        except OSError:
            time.sleep(0.2)
    stop_operator(op)
    raise RuntimeError(f"operator metrics never came up:\n{op.log_tail()}")


def stop_operator(op: OperatorProcess) -> None:
    if op.proc.poll() is None:
        op.proc.send_signal(signal.SIGTERM)
        try:
            op.proc.wait(20)
        except subprocess.TimeoutExpired:
            op.proc.kill()
            op.proc.wait()


@pytest.fixture(scope="session")
def operator(kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """One operator process for the session, watching every namespace but the `own-*` ones, which
    belong to tests that run an operator of their own (under another identity, or to count its writes)."""
    env = {"MERIDIAN_NAMESPACES": json.dumps([f"!{PRIVATE_PREFIX}*"])}
    op = start_operator(kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log", env)
    yield op
    stop_operator(op)


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60.0, interval: float = 0.25) -> Any:
    """Poll until probe() returns something truthy; fail naming what never happened."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except ApiException as e:
            last = e
            if e.status != 404:
                raise
        if last and not isinstance(last, ApiException):
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


class Mdeps:
    """ModelDeployments in one namespace through the real API."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.co = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.ns = namespace

    def create(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "metadata": {"name": name}, "spec": spec}
        result: dict[str, Any] = self.co.create_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, body)
        return result

    def get(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.co.get_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name)
        return result

    def patch(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.co.patch_namespaced_custom_object(
            GROUP, VERSION, self.ns, PLURAL, name, patch, _content_type="application/merge-patch+json"
        )
        return result

    def delete(self, name: str) -> None:
        self.co.delete_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name)

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        for c in self.get(name).get("status", {}).get("conditions", []):
            if c["type"] == type_:
                return dict(c)
        return None

    def wait_condition(self, name: str, type_: str, status: str = "True", timeout: float = 60) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            c = self.condition(name, type_)
            return c if c and c["status"] == status else None

        result: dict[str, Any] = wait_for(f"{name} {type_}={status}", probe, timeout)
        return result

    def deployments(self, name: str) -> dict[str, Any]:
        items = self.apps.list_namespaced_deployment(
            self.ns, label_selector=f"serving.meridian.dev/model-deployment={name}"
        ).items
        return {d.metadata.name: d for d in items}

    def events(self, name: str) -> list[Any]:
        return list(self.core.list_namespaced_event(self.ns, field_selector=f"involvedObject.name={name}").items)

    def explain(self, name: str, operator: OperatorProcess | None = None) -> dict[str, Any]:
        """What a failing test reports about a model that did not settle: its status, its
        Deployments' generations, wanted and ready counts, its pods' phases and conditions, and what the
        operator logged about it."""
        sel = f"serving.meridian.dev/model-deployment={name}"
        pods = self.core.list_namespaced_pod(self.ns, label_selector=sel).items
        deps = self.apps.list_namespaced_deployment(self.ns, label_selector=sel).items
        said = []
        if operator is not None:
            said = [line for line in operator.log_tail(2000).splitlines() if f'"{name}"' in line and self.ns in line]
        return {
            "status": self.get(name).get("status"),
            "deployments": [
                (
                    d.metadata.name,
                    d.metadata.generation,
                    d.status.observed_generation,
                    d.spec.replicas,
                    d.status.ready_replicas,
                )
                for d in deps
            ],
            "pods": [
                (p.metadata.name, p.status.phase, [(c.type, c.status, c.reason) for c in p.status.conditions or []])
                for p in pods
            ],
            "operator_said": said[-5:],
        }


@pytest.fixture
def mdeps(k8s: client.ApiClient, namespace: str, operator: OperatorProcess) -> Mdeps:
    return Mdeps(k8s, namespace)


@pytest.fixture
def private_namespace(k8s: client.ApiClient) -> Iterator[str]:
    """A fresh namespace the session operator does not watch, for a test that runs its own operator."""
    with fresh_namespace(k8s, PRIVATE_PREFIX) as name:
        yield name
