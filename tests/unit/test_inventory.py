"""Region capacity as `kubectl get regions` shows it, computed from nodes and the pods on them."""

from __future__ import annotations

from typing import Any

import pytest
from tests.fixtures_cluster import TEST_FLEET

from meridian.api.region import Region
from meridian.placement.fleet import regions_from_fleet
from meridian.placement.inventory import claims_of, orphan_region_labels, region_status, requested_by_node
from meridian.sim.fleet import load_fleet, node_manifests

pytestmark = pytest.mark.unit


def region(name: str, selector: dict[str, str] | None = None) -> Region:
    spec: dict[str, Any] = {"country": "FR"} | ({"nodeSelector": selector} if selector is not None else {})
    return Region.model_validate({"metadata": {"name": name}, "spec": spec})


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


def test_each_pool_reports_its_node_sizes_largest_first() -> None:
    nodes = [dict(n) for n in NODES if n["metadata"]["labels"]["topology.kubernetes.io/region"] == "gra"]
    big = next(n for n in nodes if n["metadata"]["labels"].get("nvidia.com/gpu.product"))
    nodes.append(
        {
            **big,
            "metadata": {**big["metadata"], "name": "gra-huge"},
            "status": {**big["status"], "allocatable": {**big["status"]["allocatable"], "cpu": "384"}},
        }
    )
    h100 = next(p for p in region_status(region("gra"), nodes, {}).gpus if p.product == "H100-80GB-HBM3")
    assert [(s.gpus, s.cpu, s.memory, s.nodes) for s in h100.shapes] == [(8, "384", "2Ti", 1), (8, "192", "2Ti", 4)]


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
    regions = [region("paris", {"node-restriction.kubernetes.io/region": "gra"}), region("rbx")]
    assert region_status(regions[0], NODES, {}).nodes == 5
    # lim and eri nodes carry a region label no Region selects: reported, never used
    assert orphan_region_labels(regions, NODES) == {"lim": 2, "eri": 2}


def test_fleet_regions_carry_the_same_capacity_the_planner_uses() -> None:
    regions = {r.name: r for r in regions_from_fleet(load_fleet(TEST_FLEET))}
    assert regions["gra"].status.total_gpus == 32
    assert regions["eri"].spec.jurisdictions == ["UK"]


def test_default_selector_is_the_label_a_kubelet_cannot_set() -> None:
    assert region("gra").node_selector == {"node-restriction.kubernetes.io/region": "gra"}
    # an empty selector stored before the API server rejected it keeps its old meaning: the default
    assert region("gra", {}).node_selector == {"node-restriction.kubernetes.io/region": "gra"}
    status = region_status(region("gra"), NODES, {})
    assert status.nodes == 5
    protected = {c.type: c for c in status.conditions}["SelectorProtected"]
    assert (protected.status, protected.reason) == ("True", "ProtectedLabel")
    assert "node-restriction.kubernetes.io/region" in protected.message


def test_a_node_selected_by_two_regions_makes_both_not_ready() -> None:
    # "paris" selects every gra node by zone and pool; gra selects them by the default label
    h100 = next(n for n in NODES if n["metadata"]["labels"].get("nvidia.com/gpu.product") == "H100-80GB-HBM3")
    paris = region("paris", {"sim.meridian.dev/pool": h100["metadata"]["labels"]["sim.meridian.dev/pool"]})
    regions = [region("gra"), paris, region("rbx")]
    claims = claims_of(regions, NODES)
    first = min(n["metadata"]["name"] for n in NODES if paris.node_selector.items() <= n["metadata"]["labels"].items())

    for me, other in (("gra", "paris"), ("paris", "gra")):
        mine = next(r for r in regions if r.name == me)
        status = region_status(mine, NODES, {}, claims)
        ready = {c.type: c for c in status.conditions}["Ready"]
        assert (ready.status, ready.reason) == ("False", "NodeClaimedByTwoRegions")
        assert f"node {first} " in ready.message
        assert f"Region {other}" in ready.message and f"Region {me}" in ready.message
        assert status.ready_nodes > 0  # the nodes are fine; the Region is not

    # a Region that shares nothing is unaffected, and so is any Region when claims are not given
    assert {c.type: c for c in region_status(regions[2], NODES, {}, claims).conditions}["Ready"].status == "True"
    assert region_status(regions[0], NODES, {}).conditions[0].reason == "NodesReady"


def test_a_selector_of_kubelet_settable_labels_is_not_protected() -> None:
    gra = region("gra", {"topology.kubernetes.io/region": "gra", "kubernetes.io/os": "linux"})
    status = region_status(gra, NODES, {})
    assert status.nodes == 5  # still counted: the condition warns, it does not hide capacity
    cond = {c.type: c for c in status.conditions}["SelectorProtected"]
    assert (cond.status, cond.reason) == ("False", "KubeletSettableLabels")
    assert "kubernetes.io/os, topology.kubernetes.io/region" in cond.message
    assert "node-restriction.kubernetes.io/region=gra" in cond.message

    # one protected label is enough: no kubelet can satisfy the whole selector by itself
    mixed = region("gra", {"topology.kubernetes.io/region": "gra", "node-restriction.kubernetes.io/region": "gra"})
    cond = {c.type: c for c in region_status(mixed, NODES, {}).conditions}["SelectorProtected"]
    assert (cond.status, cond.reason) == ("True", "ProtectedLabel")
    assert cond.message.startswith("nodeSelector uses node-restriction.kubernetes.io/region,")


def test_orphan_labels_are_read_from_the_protected_region_label() -> None:
    nodes = [
        {"metadata": {"name": "a", "labels": {"topology.kubernetes.io/region": "x"}}},
        {"metadata": {"name": "b", "labels": {"node-restriction.kubernetes.io/region": "y"}}},
        {"metadata": {"name": "c", "labels": {"node-restriction.kubernetes.io/region": "gra"}}},
    ]
    assert orphan_region_labels([region("gra")], nodes) == {"y": 1}


def test_nodes_that_stop_being_ready_are_reported_apart_with_when() -> None:
    """Not allocatable, but counted as notReady with the latest transition: a model may wait out a flap."""
    nodes = [dict(n) for n in NODES]
    rbx = [n for n in nodes if n["metadata"]["labels"]["topology.kubernetes.io/region"] == "rbx"]
    for i, n in enumerate(rbx):
        down = {"type": "Ready", "status": "False", "lastTransitionTime": f"2026-12-03T10:0{i}:00Z"}
        n["status"] = {**n["status"], "conditions": [down]}
    rbx[0]["spec"] = {**rbx[0].get("spec", {}), "unschedulable": True}  # cordoned: drained on purpose, not a flap
    pool = region_status(region("rbx"), nodes, {}).gpus[0]
    assert pool.allocatable == 0
    per_node = pool.capacity // len(rbx)
    assert pool.not_ready == per_node * (len(rbx) - 1)
    assert pool.not_ready_since == f"2026-12-03T10:0{len(rbx) - 1}:00Z"
