"""Region capacity as `kubectl get regions` shows it, computed from nodes and the pods on them."""

from __future__ import annotations

from typing import Any

import pytest
from tests.fixtures_cluster import TEST_FLEET

from meridian.api.region import Region
from meridian.placement.fleet import regions_from_fleet
from meridian.placement.inventory import orphan_region_labels, region_status, requested_by_node
from meridian.sim.fleet import load_fleet, node_manifests

pytestmark = pytest.mark.unit


def region(name: str, selector: dict[str, str] | None = None) -> Region:
    return Region.model_validate(
        {"metadata": {"name": name}, "spec": {"country": "FR", "nodeSelector": selector or {}}}
    )


def ready(node: dict[str, Any]) -> dict[str, Any]:
    node = {**node, "status": {**node["status"], "conditions": [{"type": "Ready", "status": "True"}]}}
    return node


def pod(node: str, gpus: int, phase: str = "Running") -> dict[str, Any]:
    limits = {"nvidia.com/gpu": str(gpus)}
    return {
        "spec": {"nodeName": node, "containers": [{"resources": {"limits": limits, "requests": limits}}]},
        "status": {"phase": phase},
    }


NODES = [ready(n) for n in node_manifests(load_fleet(TEST_FLEET))]


def test_capacity_free_and_requested_per_product() -> None:
    gra_node = next(
        n["metadata"]["name"]
        for n in NODES
        if n["metadata"]["labels"].get("nvidia.com/gpu.product") == "H100-80GB-HBM3"
    )
    pods = [pod(gra_node, 3), pod(gra_node, 2, phase="Succeeded"), pod("elsewhere", 8)]
    status = region_status(region("gra"), NODES, requested_by_node(pods))
    h100 = next(p for p in status.gpus if p.product == "H100-80GB-HBM3")
    assert status.nodes == 5  # 4 H100 nodes and one CPU node
    assert (h100.capacity, h100.allocatable, h100.requested) == (32, 32, 3)  # finished pods hold no GPUs
    assert (status.total_gpus, status.free_gpus) == (32, 29)
    assert status.conditions[0].status == "True"


def test_cordoned_or_not_ready_nodes_are_not_allocatable() -> None:
    nodes = [dict(n) for n in NODES]
    for n in nodes:
        if n["metadata"]["labels"]["topology.kubernetes.io/region"] == "rbx":
            n["spec"] = {**n.get("spec", {}), "unschedulable": True}
    status = region_status(region("rbx"), nodes, {})
    assert status.total_gpus == 0 and status.free_gpus == 0
    assert status.gpus[0].capacity == 16
    assert status.conditions[0].reason == "NoSchedulableNodes"


def test_custom_node_selector_and_orphan_labels() -> None:
    regions = [region("paris", {"topology.kubernetes.io/region": "gra"}), region("rbx")]
    assert region_status(regions[0], NODES, {}).nodes == 5
    # lim and eri nodes carry a region label no Region selects: reported, never used
    assert orphan_region_labels(regions, NODES) == {"lim": 2, "eri": 2}


def test_fleet_regions_carry_the_same_capacity_the_planner_uses() -> None:
    regions = {r.name: r for r in regions_from_fleet(load_fleet(TEST_FLEET))}
    assert regions["gra"].status.total_gpus == 32
    assert regions["eri"].spec.jurisdictions == ["UK"]
