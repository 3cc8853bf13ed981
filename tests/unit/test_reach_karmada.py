"""Regions reached as Karmada member clusters: the PropagationPolicies Meridian renders for a plan."""

from __future__ import annotations

from typing import Any

import pytest
from tests.sync_worlds import deployment, model, pod, world

from meridian.api.region import Region
from meridian.config import Settings
from meridian.placement.claims import cluster_of, member_node, node_claims
from meridian.placement.plan import Observed, plan
from meridian.render.children import children
from meridian.render.names import regional_name
from meridian.render.reach import JURISDICTION_LABEL_PREFIX, jurisdiction_labels, propagation_policies
from meridian.sync import sync
from meridian.sync.world import CLUSTER

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


def test_a_member_node_belongs_only_to_a_region_that_names_its_cluster() -> None:
    labels = {"node-restriction.kubernetes.io/region": "gra"}
    gra = region("gra", ["EU"], ["gra-1"])
    spec = {"country": "FR", "nodeSelector": labels}
    local = Region.model_validate({"metadata": {"name": "gra-local"}, "spec": spec})
    claims = node_claims(
        [gra, local],
        [
            (member_node("gra-1", "n0"), labels),
            (member_node("eri-1", "n0"), labels),  # a UK member's node labelled like Gravelines's
            ("n0", labels),  # a node of the cluster Meridian runs against
        ],
    )
    assert claims.region_of(member_node("gra-1", "n0")) == "gra"
    assert claims.region_of(member_node("eri-1", "n0")) is None
    assert claims.region_of("n0") == "gra-local"
    assert cluster_of(member_node("gra-1", "n0")) == "gra-1" and cluster_of("n0") == ""


def test_a_pass_reaching_member_clusters_applies_their_policies_with_the_children() -> None:
    gra = region("gra", ["EU"], ["gra-1"])
    md = model("llm", replicas=1)
    d = sync(world(md, [gra], {}, unserved=frozenset()))
    kinds = [o["kind"] for o in d.applies]
    assert kinds.count("PropagationPolicy") == 2  # the shared objects' and the Gravelines Deployment's
    assert kinds.index("PropagationPolicy") < kinds.index("Deployment")  # Karmada sees the policy first


def test_member_clusters_without_karmada_stall_the_model_naming_the_region() -> None:
    gra = region("gra", ["EU"], ["gra-1"])
    d = sync(world(model("llm", replicas=1), [gra], {}, unserved=frozenset({"PropagationPolicy"})))
    assert d.applies == ()
    assert d.status is not None
    stalled = next(c for c in d.status["conditions"] if c["type"] == "Stalled")
    assert stalled["reason"] == "KarmadaUnavailable" and "region gra" in stalled["message"]


def test_a_violating_pod_in_a_member_is_deleted_in_that_member() -> None:
    md = model("llm", replicas=1)
    gra = region("gra", ["EU"], ["gra-1"])
    stray = {**pod("p1", "gra", member_node("eri-1", "n0")), CLUSTER: "eri-1"}
    d = sync(world(md, [gra], {member_node("eri-1", "n0"): {}}, [deployment(md, "gra", 1)], [stray]))
    assert [(e.kind, e.name, e.cluster) for e in d.evictions] == [("Pod", "p1", "eri-1")]


def test_what_serves_a_region_whose_members_do_not_answer_is_not_pruned_until_they_do() -> None:
    md = model(
        "llm", replicas=1, placement={"residency": ["EU"], "regions": [{"name": "gra", "weight": 0}, {"name": "lim"}]}
    )
    gra, lim = region("gra", ["EU"], ["gra-1"]), region("lim", ["EU"], ["lim-1"])
    stale = [deployment(md, "gra", 1), deployment(md, "lim", 1)]
    assert [x.name for x in sync(world(md, [gra, lim], {}, stale)).prunes] == [regional_name("llm", "gra")]
    assert sync(world(md, [gra, lim], {}, stale, unreachable=frozenset({"gra"}))).prunes == ()


def test_a_model_moved_off_members_that_do_not_answer_is_ready_on_what_serves_it_elsewhere() -> None:
    """Karmada keeps the last status it heard from a member that stopped answering: the Deployment
    kept there still says 1 ready, which counts neither as running nor as ready."""
    md = model(
        "llm", replicas=2, placement={"residency": ["EU"], "regions": [{"name": "gra", "weight": 0}, {"name": "lim"}]}
    )
    gra, lim = region("gra", ["EU"], ["gra-1"]), region("lim", ["EU"], ["lim-1"])
    kept = [deployment(md, "gra", 1), deployment(md, "lim", 2)]

    def condition(d: Any, type_: str) -> tuple[str, str]:
        c = next(c for c in d.status["conditions"] if c["type"] == type_)
        return c["status"], c["reason"]

    reachable = sync(world(md, [gra, lim], {}, kept))
    assert condition(reachable, "Ready") == ("False", "ReplicasNotReady")  # 3 running for 2 wanted: a prune to come
    down = sync(world(md, [gra, lim], {}, kept, unreachable=frozenset({"gra"})))
    assert condition(down, "Ready") == ("True", "AllReplicasReady")
    assert down.status is not None and (down.status["replicas"], down.status["readyReplicas"]) == (2, 2)


def test_a_child_already_being_deleted_is_not_deleted_again() -> None:
    """Karmada holds a deleted PropagationPolicy with its finalizer until its bindings are gone:
    deleting it again on every pass meanwhile was a request each time for nothing."""
    md = model(
        "llm", replicas=1, placement={"residency": ["EU"], "regions": [{"name": "gra", "weight": 0}, {"name": "lim"}]}
    )
    regions = [region("gra", ["EU"], ["gra-1"]), region("lim", ["EU"], ["lim-1"])]
    stale = deployment(md, "gra", 1)
    live = deployment(md, "lim", 1)
    assert [x.name for x in sync(world(md, regions, {}, [stale, live])).prunes] == [regional_name("llm", "gra")]
    stale["metadata"]["deletionTimestamp"] = "2026-12-05T23:00:00Z"
    assert sync(world(md, regions, {}, [stale, live])).prunes == ()
