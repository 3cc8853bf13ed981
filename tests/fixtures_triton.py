"""Pytest fixtures for a real Triton server (meridian.sim.triton). Register with pytest_plugins.

triton_server makes servers on free ports; loopback_hosts gives each server an address of its own so
it can use Triton's standard ports as a pod does; pod_backer runs one server per Running pod of the
session's cluster, on the pod's IP (end-to-end tests).

Without the Triton binary the tests that use these fixtures are skipped, with the reason; under
CI (CI=true) they fail instead, so a broken install can never turn the suite green.
"""

from __future__ import annotations

import itertools
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
from kubernetes import client as k8s_client

from meridian.api.modeldeployment import ModelDeployment
from meridian.runtime.layout import VERSION
from meridian.runtime.repository import model_repository
from meridian.sim import cluster
from meridian.sim.triton import (
    TritonInstall,
    TritonNotAvailable,
    TritonServer,
    doubling_model,
    find_triton,
    http_get,
    prepare_backends,
    write_repository,
)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def triton_install() -> TritonInstall:
    """The wheel's Triton for this interpreter; skip (or fail under CI) when it is not there."""
    try:
        return find_triton()
    except TritonNotAvailable as e:
        if in_ci():
            pytest.fail(f"Triton is required in CI: {e}")
        pytest.skip(f"no Triton server available: {e}")


@pytest.fixture(scope="session")
def triton_backends(triton_install: TritonInstall, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One prepared --backend-directory shared by every server of the session."""
    return prepare_backends(triton_install, tmp_path_factory.mktemp("triton-backends"))


class TritonFactory(Protocol):
    """Makes a TritonServer (not yet started); `backends` replaces the shared --backend-directory."""

    def __call__(self, backends: Path | None = None) -> TritonServer: ...


@pytest.fixture
def triton_server(triton_install: TritonInstall, triton_backends: Path, tmp_path: Path) -> Iterator[TritonFactory]:
    """A factory of TritonServer objects (not yet started); every one is stopped at teardown."""
    servers: list[TritonServer] = []

    def make(backends: Path | None = None) -> TritonServer:
        server = TritonServer(tmp_path / f"triton-{len(servers)}", triton_install, backends or triton_backends)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def python_deployment(name: str = "double", max_batch_size: int = 8) -> ModelDeployment:
    """A python-format ModelDeployment, as a user would write it."""
    return ModelDeployment.model_validate(
        {
            "metadata": {"name": name, "namespace": "test"},
            "spec": {
                "model": {"format": "python", "storageUri": f"pvc://models/{name}"},
                "runtime": {"maxBatchSize": max_batch_size},
            },
        }
    )


def python_repository(root: Path, md: ModelDeployment, model_py: str | None = None) -> Path:
    """The repository a pod would hold: Meridian's configs plus the model.py storageUri would bring."""
    files = dict(model_repository(md))
    files[f"{md.model_name}/{VERSION}/model.py"] = model_py if model_py is not None else doubling_model()
    return write_repository(root, files)


@pytest.fixture
def doubling_server(triton_server: TritonFactory, tmp_path: Path) -> TritonServer:
    """A started server serving the python-format model "double" (OUTPUT0 = 2 × INPUT0)."""
    repo = python_repository(tmp_path / "repository", python_deployment())
    return triton_server().start(repo)


def loopback_hosts(count: int, port: int = 8002, attempts: int = 50) -> list[str]:
    """`count` distinct loopback addresses (127.a.b.c, outside kwok's pod and node ranges) where `port` is free.

    Linux routes all of 127.0.0.0/8 to the loopback interface, so each test server can have an address
    of its own and listen on Triton's standard ports, as pods do; a random /24 keeps concurrent
    sessions apart.
    """
    rng = random.Random()
    for _ in range(attempts):
        base = f"127.{rng.randrange(100, 250)}.{rng.randrange(0, 256)}"
        hosts = [f"{base}.{i + 1}" for i in range(count)]
        if all(port_is_free(host, port) for host in hosts):
            return hosts
    raise RuntimeError(f"no loopback /24 with port {port} free on {count} addresses after {attempts} tries")


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


# -- pods backed by real Triton servers (end-to-end tests) -----------------------------------------------


@dataclass
class BackedPod:
    """A Running pod and the Triton server standing in for its container, on the pod's IP."""

    uid: str
    name: str
    ip: str
    server: TritonServer
    ready: bool = False
    starts: int = 0
    retry_at: float = 0.0


class PodBacker:
    """Backs every Running pod of a selector with a real Triton on the pod's IP and the standard ports.

    kwok gives pods loopback addresses (127.40.0.0/16) and no containers; this thread gives each
    Running pod the process its container would run: tritonserver bound to the pod IP on 8000 (HTTP),
    8001 (gRPC) and 8002 (metrics), serving `repository`, so the operator reaches pods exactly as in
    production (http://<podIP>:8002/metrics, <podIP>:8000 for metadata). A pod that goes away
    (deleted, terminating, failed) has its server stopped. A server that fails to start (e.g. the
    address of a pod deleted a moment ago is still held by its stopping server) is retried.
    `http_port` stands in for another front end's port (9000: the OpenAI frontend an InferencePool targets).
    """

    def __init__(
        self,
        kubeconfig: Path,
        namespace: str,
        selector: str,
        repository: Path,
        make_server: Callable[[str], TritonServer],
        poll_seconds: float = 0.3,
        http_port: int = 8000,
    ) -> None:
        self.http_port = http_port
        self.namespace = namespace
        self.selector = selector
        self.repository = repository
        self._make_server = make_server
        self._poll = poll_seconds
        self._api = cluster.api_client(kubeconfig)
        self._core = k8s_client.CoreV1Api(self._api)
        self._pods: dict[str, BackedPod] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stoppers: list[threading.Thread] = []
        self.history: list[tuple[float, str, str, str]] = []  # (time, what, pod, ip)
        self.errors: list[str] = []

    def start(self) -> PodBacker:
        self._thread = threading.Thread(target=self._run, name=f"pod-backer-{self.namespace}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        with self._lock:
            for uid in list(self._pods):
                self._release(uid)
        for t in self._stoppers:
            t.join(30)
        self._api.close()  # type: ignore[no-untyped-call]

    def addresses(self) -> list[str]:
        """host:port (HTTP) of every pod whose server is ready: where a Service would send requests."""
        with self._lock:
            return sorted(f"{p.ip}:{self.http_port}" for p in self._pods.values() if p.ready)

    def backed(self) -> dict[str, str]:
        """pod name → IP of the pods with a ready server."""
        with self._lock:
            return {p.name: p.ip for p in self._pods.values() if p.ready}

    def _note(self, what: str, pod: BackedPod) -> None:
        self.history.append((time.time(), what, pod.name, pod.ip))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                pods: list[Any] = self._core.list_namespaced_pod(self.namespace, label_selector=self.selector).items
            except Exception as e:  # the API server is busy: try again
                self.errors.append(f"list pods: {e}"[:300])
                self._stop.wait(self._poll)
                continue
            live = {
                p.metadata.uid: p
                for p in pods
                if p.status.phase == "Running" and p.status.pod_ip and not p.metadata.deletion_timestamp
            }
            with self._lock:
                for uid in [u for u in self._pods if u not in live]:
                    self._release(uid)
                for uid, pod in live.items():
                    self._tend(uid, pod.metadata.name, pod.status.pod_ip)
            self._stop.wait(self._poll)

    def _tend(self, uid: str, name: str, ip: str) -> None:
        """Start the pod's server if it has none, follow it until ready, restart it if it died."""
        backed = self._pods.get(uid)
        if backed is None:
            backed = self._pods[uid] = BackedPod(uid, name, ip, self._make_server(name))
        server = backed.server
        if backed.starts and server.exit_code is None:
            if not backed.ready and http_get(f"{server.http_url}/v2/health/ready", timeout=0.5)[0] == 200:
                backed.ready = True
                self._note("ready", backed)
            return
        if backed.starts:  # it exited: say why, and start again a moment later
            if backed.ready or backed.retry_at == 0.0:
                backed.ready = False
                self.errors.append(f"{name} ({ip}): exited {server.exit_code}: {server.log_tail(5)}"[:600])
                backed.retry_at = time.monotonic() + 1.0
                self._note("exited", backed)
            if time.monotonic() < backed.retry_at:
                return
        backed.retry_at = 0.0
        backed.starts += 1
        server.start(self.repository, host=ip, http_port=self.http_port, grpc_port=8001, metrics_port=8002, wait=False)
        self._note("started", backed)

    def _release(self, uid: str) -> None:
        backed = self._pods.pop(uid)
        backed.ready = False
        self._note("stopped", backed)
        stopper = threading.Thread(target=backed.server.stop, name=f"stop-{backed.name}", daemon=True)
        stopper.start()
        self._stoppers.append(stopper)


class PodBackerFactory(Protocol):
    def __call__(self, namespace: str, selector: str, repository: Path, http_port: int = 8000) -> PodBacker: ...


@pytest.fixture
def pod_backer(
    kubeconfig: Path, triton_install: TritonInstall, triton_backends: Path, tmp_path: Path
) -> Iterator[PodBackerFactory]:
    """Starts PodBackers (see there) on the session's cluster; all are stopped, with their servers, at teardown."""
    backers: list[PodBacker] = []
    count = itertools.count()

    def make_server(pod: str) -> TritonServer:
        return TritonServer(tmp_path / f"pod-{pod}-{next(count)}", triton_install, triton_backends)

    def make(namespace: str, selector: str, repository: Path, http_port: int = 8000) -> PodBacker:
        backer = PodBacker(kubeconfig, namespace, selector, repository, make_server, http_port=http_port).start()
        backers.append(backer)
        return backer

    yield make
    for backer in backers:
        backer.stop()
