"""The simulated EU fleet (examples/fleets/eu.yaml) with its own control plane and operator, for e2e."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from tests.fixtures_cluster import REPO, fresh_namespace, unavailable
from tests.fixtures_operator import Mdeps, OperatorProcess, start_operator, stop_operator

from meridian.sim import binaries, cluster, controlplane
from meridian.sim import fleet as fleetmod

EU_FLEET = REPO / "examples" / "fleets" / "eu.yaml"


@dataclass
class EuCluster:
    kubeconfig: Path
    api: client.ApiClient
    fleet: fleetmod.Fleet
    operator: OperatorProcess
    control_plane: controlplane.ControlPlane

    def node_manifests(self, region: str, product: str | None = None) -> list[dict[str, Any]]:
        out = []
        for node in fleetmod.node_manifests(self.fleet):
            labels = node["metadata"]["labels"]
            if labels["topology.kubernetes.io/region"] == region and (
                product is None or labels.get("nvidia.com/gpu.product") == product
            ):
                out.append(node)
        return out


@pytest.fixture(scope="session")
def eu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EuCluster]:
    if controlplane.existing_cluster_requested():
        pytest.skip("the EU fleet needs a control plane of its own, not USE_EXISTING_CLUSTER")
    try:
        bins = binaries.locate()
    except binaries.BinariesMissing as e:
        unavailable(str(e))
    workdir = tmp_path_factory.mktemp("eu")
    # a pod range of its own: the test-fleet cluster's pods (127.40/16) may be backed by real Triton servers
    cp = controlplane.ControlPlane(workdir, bins, die_with_parent=True, pod_cidr="127.42.0.0/16")
    try:
        kubeconfig = cp.start()
    except (controlplane.ControlPlaneError, OSError) as e:
        unavailable(f"{e} (logs in {workdir / 'logs'})")
    api = cluster.api_client(kubeconfig)
    operator = None
    try:
        fleet = fleetmod.load_fleet(EU_FLEET)
        cluster.apply_fleet(api, fleet, REPO / "crds")
        operator = start_operator(
            kubeconfig, workdir / "operator.log", {"MERIDIAN_LOG_LEVEL": os.environ.get("LOG", "INFO")}
        )
        eu = EuCluster(kubeconfig, api, fleet, operator, cp)
        yield eu
        operator = eu.operator  # a test may have restarted it
    finally:
        if operator is not None:
            stop_operator(operator)
        api.close()  # type: ignore[no-untyped-call]
        cp.stop()


@pytest.fixture
def eu_mdeps(eu: EuCluster) -> Iterator[Mdeps]:
    with fresh_namespace(eu.api, "e2e-") as name:
        yield Mdeps(eu.api, name)
