"""Placement on the simulated EU fleet: residency, weights, product pinning, failover and return.

8 regions (gra, rbx, sbg, par, lim, waw in the EU; eri in the UK; bhs in Canada), gra the only H100
site. Each assertion is about where pods actually run, read from the nodes they were scheduled on.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
from kubernetes import client
from tests.fixtures_eu import EuCluster
from tests.fixtures_operator import Mdeps, wait_for

from meridian.render.names import regional_name
from meridian.sim import cluster

pytestmark = pytest.mark.e2e
EU = {"gra", "rbx", "sbg", "par", "lim", "waw"}


def spec(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": {"format": "onnx", "storageUri": "s3://models/m"},
        "resources": {"cpu": "1", "memory": "1Gi"},
        "replicas": 2,
        "placement": {"residency": ["EU"]},
    }
    base.update(over)
    return base


def pod_regions(m: Mdeps, name: str) -> Counter[str]:
    """Region of the node each running pod of `name` is on."""
    out: Counter[str] = Counter()
    for pod in m.core.list_namespaced_pod(m.ns, label_selector=f"serving.meridian.dev/model-deployment={name}").items:
        if pod.spec.node_name and pod.status.phase == "Running" and not pod.metadata.deletion_timestamp:
            try:
                node = m.core.read_node(pod.spec.node_name)
            except client.ApiException as e:
                if e.status == 404:  # its node was deleted: the pod is gone with it
                    continue
                raise
            out[node.metadata.labels["topology.kubernetes.io/region"]] += 1
    return out


def test_eu_resident_model_never_lands_outside_the_eu(eu_mdeps: Mdeps) -> None:
    # A100s exist in the UK and Canada too: residency alone must keep the model out of them
    eu_mdeps.create("llm", spec(replicas=12, resources={"gpu": {"products": ["A100-SXM4-80GB"]}}))
    eu_mdeps.wait_condition("llm", "Ready", timeout=120)
    where = pod_regions(eu_mdeps, "llm")
    assert sum(where.values()) == 12
    assert set(where) <= EU, where
    assert not {regional_name("llm", "eri"), regional_name("llm", "bhs")} & set(eu_mdeps.deployments("llm"))
    assert eu_mdeps.condition("llm", "ResidencyCompliant")["status"] == "True"  # type: ignore[index]


def test_weights_are_respected(eu_mdeps: Mdeps) -> None:
    placement = {"residency": ["EU"], "regions": [{"name": "gra", "weight": 3}, {"name": "par", "weight": 1}]}
    eu_mdeps.create("llm", spec(replicas=8, placement=placement))
    eu_mdeps.wait_condition("llm", "Ready", timeout=120)
    assert pod_regions(eu_mdeps, "llm") == Counter({"gra": 6, "par": 2})


def test_a_product_in_one_region_pins_the_model_there(eu_mdeps: Mdeps) -> None:
    eu_mdeps.create("llm", spec(replicas=3, resources={"gpu": {"products": ["H100-80GB-HBM3"]}}))
    eu_mdeps.wait_condition("llm", "Ready", timeout=120)
    assert pod_regions(eu_mdeps, "llm") == Counter({"gra": 3})


def test_no_qualifying_region_stalls_naming_what_is_missing(eu_mdeps: Mdeps) -> None:
    eu_mdeps.create("swiss", spec(placement={"residency": ["CH"]}))
    eu_mdeps.create("h200", spec(resources={"gpu": {"products": ["H200-141GB"]}}))
    swiss = eu_mdeps.wait_condition("swiss", "Stalled")
    assert "CH" in swiss["message"]
    h200 = eu_mdeps.wait_condition("h200", "Stalled")
    assert "H200-141GB" in h200["message"]
    assert eu_mdeps.deployments("swiss") == {}
    assert eu_mdeps.deployments("h200") == {}


def test_failover_when_a_region_loses_its_nodes_and_return(eu: EuCluster, eu_mdeps: Mdeps) -> None:
    unschedulable_seconds = 10
    placement = {
        "residency": ["EU"],
        "regions": [{"name": "lim", "weight": 1}, {"name": "sbg", "weight": 0}],
        "failover": {"enabled": True, "unschedulableSeconds": unschedulable_seconds},
    }
    eu_mdeps.create("llm", spec(replicas=2, resources={"gpu": {"products": ["L4"]}}, placement=placement))
    eu_mdeps.wait_condition("llm", "Ready", timeout=120)
    assert pod_regions(eu_mdeps, "llm") == Counter({"lim": 2})

    core = client.CoreV1Api(eu.api)
    lost = eu.node_manifests("lim", "L4")
    t0 = time.monotonic()
    for node in lost:
        core.delete_node(node["metadata"]["name"])
    wait_for(
        "replicas Ready in sbg",
        lambda: pod_regions(eu_mdeps, "llm") == Counter({"sbg": 2}) and _ready(eu_mdeps, "llm", "sbg") == 2,
        timeout=unschedulable_seconds + 30,
    )
    failover_seconds = time.monotonic() - t0
    reasons = {e.reason for e in eu_mdeps.events("llm")}
    assert reasons & {"Failover", "Drain", "Capacity", "Evict"}, reasons
    regions = {r["name"]: r for r in eu_mdeps.get("llm")["status"]["regions"]}
    assert regions["sbg"]["reason"]

    cluster.apply_nodes(eu.api, lost)
    wait_for(
        "replicas back in lim",
        lambda: pod_regions(eu_mdeps, "llm") == Counter({"lim": 2}) and _ready(eu_mdeps, "llm", "lim") == 2,
        timeout=180,
    )
    eu_mdeps.wait_condition("llm", "PlacementSatisfied", timeout=60)
    print(f"failover seconds: {failover_seconds:.1f}")


def _ready(m: Mdeps, name: str, region: str) -> int:
    d = m.deployments(name).get(regional_name(name, region))
    return int(d.status.ready_replicas or 0) if d is not None else 0


def test_a_missing_claim_stalls_with_the_schedulers_reason_and_moves_nothing(eu_mdeps: Mdeps) -> None:
    placement = {
        "residency": ["EU"],
        "regions": [{"name": "sbg", "weight": 1}, {"name": "lim", "weight": 0}],
        "failover": {"enabled": True, "unschedulableSeconds": 3},
    }
    model = {"format": "onnx", "storageUri": "pvc://models/llama"}  # no such claim in the namespace
    eu_mdeps.create("llm", spec(model=model, resources={"gpu": {"products": ["L4"]}}, placement=placement))
    stalled = eu_mdeps.wait_condition("llm", "Stalled", timeout=60)
    assert stalled["reason"] == "Unschedulable"
    assert 'persistentvolumeclaim "models" not found' in stalled["message"]
    t0 = time.monotonic()
    while time.monotonic() - t0 < 8:  # well past unschedulableSeconds: a shortfall would have moved by now
        regions = {d.metadata.labels["serving.meridian.dev/region"] for d in eu_mdeps.deployments("llm").values()}
        assert regions == {"sbg"}, regions
        time.sleep(0.5)
    assert "Failover" not in {e.reason for e in eu_mdeps.events("llm")}
    wait_for("the Unschedulable Event", lambda: "Unschedulable" in {e.reason for e in eu_mdeps.events("llm")}, 10)
