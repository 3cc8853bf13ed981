"""Regions reached as Karmada member clusters: the PropagationPolicies Meridian renders for a plan."""

from __future__ import annotations

from typing import Any

import pytest
from tests.sync_worlds import model

from meridian.api.region import Region
from meridian.config import Settings
from meridian.placement.plan import Observed, plan
from meridian.render.children import children
from meridian.render.names import regional_name
from meridian.render.reach import JURISDICTION_LABEL_PREFIX, jurisdiction_labels, propagation_policies

pytestmark = pytest.mark.unit

EU = {f"{JURISDICTION_LABEL_PREFIX}EU": "true"}


def region(name: str, tags: list[str], clusters: list[str] | None) -> Region:
    spec: dict[str, Any] = {"country": "FR", "jurisdictions": tags}
    if clusters is not None:
        spec["clusters"] = clusters
    return Region.model_validate({"metadata": {"name": name}, "spec": spec})


def policies(regions: list[Region], **spec: Any) -> dict[str, dict[str, Any]]:
    md = model("llm", **spec)
    p = plan(md.spec, regions, Observed())
    objs = children(md, p, Settings())
    required = md.spec.placement.residency
    rendered = propagation_policies(md, p, {r.name: r for r in regions}, objs, required)
    return {pp["metadata"]["name"]: pp for pp in rendered}


def selected(pp: dict[str, Any]) -> set[tuple[str, str]]:
    return {(s["kind"], s["name"]) for s in pp["spec"]["resourceSelectors"]}


def test_each_region_is_pinned_to_its_clusters_by_name_and_by_every_required_jurisdiction() -> None:
    regions = [region("gra", ["EU", "FR"], ["gra-1"]), region("lim", ["EU", "DE"], ["lim-1"])]
    got = policies(regions, replicas=4, placement={"residency": ["EU"]})
    for r in ("gra", "lim"):
        pp = got[regional_name("llm", r)]
        affinity = pp["spec"]["placement"]["clusterAffinity"]
        assert affinity == {"clusterNames": [f"{r}-1"], "labelSelector": {"matchLabels": EU}}
        name = regional_name("llm", r)
        assert selected(pp) == {("Deployment", name), ("Service", name)}
        assert pp["spec"]["conflictResolution"] == "Abort"  # never overwrite what is already in a member
        assert "failover" not in pp["spec"]  # moves are Meridian's, not Karmada's
    shared = got["llm"]
    assert shared["spec"]["placement"]["clusterAffinity"]["clusterNames"] == ["gra-1", "lim-1"]
    assert shared["spec"]["placement"]["clusterAffinity"]["labelSelector"] == {"matchLabels": EU}
    assert {k for k, _ in selected(shared)} == {"ConfigMap", "Service", "PodDisruptionBudget"}
    assert all(pp["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment" for pp in got.values())


def test_a_region_of_two_clusters_divides_its_replicas_evenly_between_them() -> None:
    got = policies([region("par", ["EU"], ["par-a", "par-b"])], replicas=4, placement={"residency": ["EU"]})
    scheduling = got[regional_name("llm", "par")]["spec"]["placement"]["replicaScheduling"]
    assert scheduling["replicaSchedulingType"] == "Divided"
    weights = scheduling["weightPreference"]["staticWeightList"]
    assert [(w["targetCluster"]["clusterNames"], w["weight"]) for w in weights] == [(["par-a"], 1), (["par-b"], 1)]


def test_a_region_the_model_may_not_use_gets_no_policy_and_its_clusters_nothing_shared() -> None:
    regions = [region("gra", ["EU"], ["gra-1"]), region("eri", ["UK"], ["eri-1"])]
    got = policies(regions, replicas=2, placement={"residency": ["EU"]})
    assert regional_name("llm", "eri") not in got
    assert all("eri-1" not in pp["spec"]["placement"]["clusterAffinity"]["clusterNames"] for pp in got.values())


def test_regions_reached_as_nodes_need_no_policy() -> None:
    assert policies([region("gra", ["EU"], None)], replicas=2) == {}


def test_without_residency_the_pin_is_by_name_alone() -> None:
    got = policies([region("gra", ["EU"], ["gra-1"])], replicas=1, placement={"residency": []})
    assert got[regional_name("llm", "gra")]["spec"]["placement"]["clusterAffinity"] == {"clusterNames": ["gra-1"]}


def test_a_member_cluster_carries_one_label_per_jurisdiction_and_its_country() -> None:
    assert jurisdiction_labels("FR", ["FR", "EU"]) == {
        "serving.meridian.dev/country": "FR",
        f"{JURISDICTION_LABEL_PREFIX}EU": "true",
        f"{JURISDICTION_LABEL_PREFIX}FR": "true",
    }
