"""A Karmada control plane with three member clusters (gra and lim in the EU, eri in the UK), each
with its own kwok nodes, and an operator running against Karmada's API server, for e2e.

The members are read with their own kubeconfigs, not through the operator's cluster proxy: what a
test asserts about where pods run is seen from each member itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client
from tests.fixtures_cluster import REPO, fresh_namespace, unavailable
from tests.fixtures_operator import Mdeps, OperatorProcess, start_operator, stop_operator

from meridian.sim import binaries, cluster, controlplane, members
from meridian.sim import fleet as fleetmod

KARMADA_FLEET = REPO / "examples" / "fleets" / "karmada.yaml"
MEMBERS = ("gra", "lim", "eri")  # two EU members and one UK member


@dataclass
class KarmadaFleet:
    workdir: Path
    kubeconfig: Path  # Karmada's API server
    api: client.ApiClient
    members: dict[str, client.ApiClient]  # region → its member cluster, read directly
    operator: OperatorProcess
    planes: dict[str, controlplane.ControlPlane]  # region → its member's control plane processes


@pytest.fixture(scope="session")
def karmada_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KarmadaFleet]:
    if controlplane.existing_cluster_requested():
        pytest.skip("the Karmada fleet starts control planes of its own, not USE_EXISTING_CLUSTER")
    try:
        binaries.locate()
        binaries.karmada()
    except binaries.BinariesMissing as e:
        unavailable(str(e))
    whole = fleetmod.load_fleet(KARMADA_FLEET)
    spec = whole.model_copy(
        update={
            "regions": [r for r in whole.regions if r.name in MEMBERS],
            "node_pools": [p for p in whole.node_pools if p.region in MEMBERS],
        }
    )
    workdir = tmp_path_factory.mktemp("karmada")
    try:
        plane, planes = members.start(spec, workdir, REPO / "crds", die_with_parent=True, timeout=180)
    except (controlplane.ControlPlaneError, OSError) as e:
        unavailable(f"{e} (logs under {workdir})")
    kubeconfig = plane.kubeconfig
    api = cluster.api_client(kubeconfig)
    by_region = {r.name: cp for r, cp in zip(spec.regions, planes, strict=True)}
    member_apis = {r: cluster.api_client(cp.kubeconfig) for r, cp in by_region.items()}
    operator = None
    try:
        operator = start_operator(
            kubeconfig, workdir / "operator.log", {"MERIDIAN_LOG_LEVEL": os.environ.get("LOG", "INFO")}
        )
        fleet = KarmadaFleet(workdir, kubeconfig, api, member_apis, operator, by_region)
        yield fleet
        operator = fleet.operator  # a test may have restarted it
    finally:
        if operator is not None:
            stop_operator(operator)
        for a in (api, *member_apis.values()):
            a.close()  # type: ignore[no-untyped-call]
        members.stop(workdir)


@pytest.fixture
def karmada_mdeps(karmada_fleet: KarmadaFleet) -> Iterator[Mdeps]:
    with fresh_namespace(karmada_fleet.api, "km-") as name:
        yield Mdeps(karmada_fleet.api, name)
