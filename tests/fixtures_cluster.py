"""pytest fixtures for the real local control plane with the test fleet (examples/fleets/test.yaml).

One control plane per test session; each test gets its own namespace. When the control plane cannot
start, integration tests are skipped with instructions locally, and fail under CI=true: a CI run
that silently skips the cluster tests would prove nothing.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from meridian.sim import binaries, cluster, controlplane
from meridian.sim import fleet as fleetmod

REPO = Path(__file__).resolve().parents[1]
TEST_FLEET = REPO / "examples" / "fleets" / "test.yaml"


@dataclass
class SimCluster:
    """A running control plane with the test fleet applied."""

    workdir: Path
    kubeconfig: Path
    fleet: fleetmod.Fleet
    control_plane: controlplane.ControlPlane


def unavailable(reason: str) -> NoReturn:
    """Skip locally; fail under CI=true, where a missing cluster is a broken pipeline, not a choice."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"control plane unavailable under CI: {reason}", pytrace=False)
    hint = "" if "make tools" in reason else " Build the binaries with `make tools`."
    pytest.skip(f"control plane unavailable: {reason}.{hint}")


@pytest.fixture(scope="session")
def sim_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    """Start etcd, kube-apiserver, controller-manager, scheduler and kwok; create the test fleet."""
    workdir = tmp_path_factory.mktemp("sim")
    spec = fleetmod.load_fleet(TEST_FLEET)
    bins: binaries.Binaries | None = None
    if not controlplane.existing_cluster_requested():
        try:
            bins = binaries.locate()
        except binaries.BinariesMissing as e:
            unavailable(str(e))
    # die_with_parent: a session killed by a timeout must not leave a control plane behind
    cp = controlplane.ControlPlane(workdir, bins, die_with_parent=True)
    try:
        kubeconfig = cp.start()
    except (controlplane.ControlPlaneError, OSError) as e:
        unavailable(f"{e} (logs in {workdir / 'logs'})")
    try:
        api = cluster.api_client(kubeconfig)
        try:
            crd_dir = REPO / "crds"
            cluster.apply_fleet(api, spec, crd_dir if crd_dir.is_dir() else None)
        finally:
            api.close()  # type: ignore[no-untyped-call]
    except BaseException:
        cp.stop()
        raise
    try:
        yield SimCluster(workdir=workdir, kubeconfig=kubeconfig, fleet=spec, control_plane=cp)
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def kubeconfig(sim_cluster: SimCluster) -> Path:
    """Admin kubeconfig of the session's control plane (client cert in group system:masters)."""
    return sim_cluster.kubeconfig


@pytest.fixture(scope="session")
def k8s(kubeconfig: Path) -> Iterator[client.ApiClient]:
    """A sync kubernetes ApiClient with admin rights; wrap it in CoreV1Api, AppsV1Api, ..."""
    api = cluster.api_client(kubeconfig)
    yield api
    api.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def namespace(k8s: client.ApiClient) -> Iterator[str]:
    """A fresh namespace for one test (its default ServiceAccount exists), deleted afterwards."""
    with fresh_namespace(k8s, "t-") as name:
        yield name


@contextlib.contextmanager
def admission_refusing(
    api: client.ApiClient, namespace: str, name: str, rule: dict[str, Any], message: str
) -> Iterator[None]:
    """A ValidatingAdmissionPolicy of the test's own that refuses what `rule` (one resourceRule)
    matches in `namespace`, with `message`; removed afterwards. The API server enforces it a moment
    after creation: the caller waits for a refusal it can observe."""
    adm = client.AdmissionregistrationV1Api(api)
    adm.create_validating_admission_policy(
        {
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [rule]},
                "validations": [{"expression": "false", "message": message}],
            },
        }
    )
    adm.create_validating_admission_policy_binding(
        {
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}},
            },
        }
    )
    try:
        yield
    finally:
        adm.delete_validating_admission_policy_binding(name)
        adm.delete_validating_admission_policy(name)


def wait_namespace_gone(core: client.CoreV1Api, ns: str, timeout: float = 180) -> None:
    """Until a deleted namespace has gone: what it held no longer loads the cluster for what follows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            core.read_namespace(ns)
        except ApiException as e:
            if e.status == 404:
                return
            raise
        time.sleep(0.5)
    pytest.fail(f"namespace {ns} still there {timeout:.0f}s after its deletion")


@contextlib.contextmanager
def fresh_namespace(api: client.ApiClient, prefix: str) -> Iterator[str]:
    """Create `<prefix><random>`, wait for its default ServiceAccount (pods need it), delete it after."""
    core = client.CoreV1Api(api)
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    deadline = time.monotonic() + 30
    while True:
        try:
            core.read_namespaced_service_account("default", name)
            break
        except ApiException as e:
            if e.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    try:
        yield name
    finally:
        try:
            core.delete_namespace(name)
        except ApiException as e:
            if e.status != 404:
                raise
