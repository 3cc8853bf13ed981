"""The pure pass, case by case: evictions from what is live, residency proven from pods, ownership."""

from __future__ import annotations

from dataclasses import replace

import pytest
from tests.sync_worlds import deployment, model, nodes_of, pod, region, world

from meridian.config import Settings
from meridian.placement.claims import node_claims
from meridian.render.names import model_service_name, regional_name
from meridian.sync import ApplyFailure, sync

pytestmark = pytest.mark.unit

GRA, WAW, ERI = region("gra", ["EU", "FR"]), region("waw", ["EU", "PL"]), region("eri", ["UK"])


def cond(status: dict[str, object] | None, type_: str) -> dict[str, str]:
    assert status is not None
    return next(c for c in status["conditions"] if c["type"] == type_)  # type: ignore[attr-defined,no-any-return]


def test_a_region_losing_eu_with_nowhere_left_is_evicted_and_reported_non_compliant() -> None:
    md = model()
    lost = region("waw", ["PL"])  # EU removed while serving; no other EU region exists
    w = world(md, [lost, ERI], nodes_of(waw=2, eri=2), [deployment(md, "waw", 2)], [pod("p1", "waw", "waw-0")])
    d = sync(w)
    assert [(e.kind, e.region) for e in d.evictions] == [("Deployment", "waw"), ("Pod", "waw")]
    assert d.applies == ()  # the plan stalls, the eviction happens anyway
    assert cond(d.status, "Stalled")["status"] == "True"
    residency = cond(d.status, "ResidencyCompliant")
    assert residency["status"] == "False"
    assert "p1" in residency["message"] and "waw-0" in residency["message"] and "waw" in residency["message"]
    assert {r.event for r in d.records} >= {"residency.eviction", "residency.violation"}


def test_compliance_is_proven_from_pod_nodes_not_from_the_plan() -> None:
    md = model()
    w = world(md, [GRA], nodes_of(gra=1), [deployment(md, "gra", 1)], [pod("p1", "gra", "gra-0")])
    d = sync(w)
    assert cond(d.status, "ResidencyCompliant")["status"] == "True"
    assert d.status is not None and d.status["residency"]["regions"] == [
        {"name": "gra", "pods": 1, "jurisdictions": ["EU", "FR"]}
    ]
    # the same pod, its node now selected by no Region: a violation naming pod and node
    moved = replace(
        w, claims=node_claims([GRA], {"gra-0": {"node-restriction.kubernetes.io/region": "elsewhere"}}.items())
    )
    d = sync(moved)
    assert cond(d.status, "ResidencyCompliant")["status"] == "False"
    assert [(e.kind, e.name) for e in d.evictions] == [("Pod", "p1")]
    assert d.status is not None and d.status["residency"]["violations"][0]["node"] == "gra-0"
    # once the pod is gone the model is compliant again, and the status still holds the evidence
    after = md.model_copy(update={"status": type(md.status).model_validate(d.status)})
    d = sync(replace(moved, model=after, pods=()))
    assert cond(d.status, "ResidencyCompliant")["status"] == "True"
    assert d.status is not None and d.status["residency"]["lastViolation"]["pod"] == "p1"


def test_a_node_selected_by_two_regions_makes_both_unusable() -> None:
    md = model()
    waw_on_uk_nodes = region("waw", ["EU"], {"node-restriction.kubernetes.io/region": "eri"})
    w = world(md, [GRA, waw_on_uk_nodes, ERI], nodes_of(gra=1, eri=1), [deployment(md, "waw", 1)])
    d = sync(w)
    assert [(e.kind, e.region) for e in d.evictions] == [("Deployment", "waw")]
    assert "shares node eri-0 with Region eri" in d.evictions[0].reason
    applied = {o["metadata"]["name"] for o in d.applies if o["kind"] == "Deployment"}
    assert applied == {regional_name("llm", "gra")}  # nothing for waw, ever


def test_a_namespace_label_the_spec_does_not_honour_stalls_and_evicts() -> None:
    md = model(placement={"residency": []})
    w = world(md, [GRA], nodes_of(gra=1), [deployment(md, "gra", 2)], namespace_residency="EU")
    d = sync(w)
    stalled = cond(d.status, "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "NamespaceResidency"
    assert "serving.meridian.dev/residency=EU" in stalled["message"]
    assert [e.kind for e in d.evictions] == ["Deployment"]
    assert d.applies == ()


def test_an_object_we_do_not_control_is_never_applied_over() -> None:
    md = model()
    w = world(md, [GRA], nodes_of(gra=1), foreign={("Service", "llm"): "not controlled by Meridian"})
    d = sync(w)
    assert d.applies == () and d.prunes == ()
    stalled = cond(d.status, "Stalled")
    assert stalled["reason"] == "NameConflict" and "Service llm" in stalled["message"]


def test_an_apply_the_api_server_refuses_stalls_with_its_message() -> None:
    md = model()
    base = world(md, [GRA], nodes_of(gra=1))
    refused = sync(replace(base, apply_failure=ApplyFailure("Service/llm", 422, "spec.ports: Invalid value")))
    stalled = cond(refused.status, "Stalled")
    assert stalled["reason"] == "ApplyRejected" and "spec.ports: Invalid value" in stalled["message"]
    flaky = sync(replace(base, apply_failure=ApplyFailure("Service/llm", 0, "timed out")))
    assert cond(flaky.status, "Stalled")["status"] == "False"
    assert cond(flaky.status, "Ready")["reason"] == "ApplyFailed"
    # what server-side apply answers for a field the kind lacks (a free-form env valueFrom, say)
    typed = "failed to create typed patch object (ns/llm-gra; apps/v1, Kind=Deployment): .spec...: field not declared"
    untyped = sync(replace(base, apply_failure=ApplyFailure("Deployment/llm-gra", 500, typed)))
    assert cond(untyped.status, "Stalled")["reason"] == "ApplyRejected"
    overloaded = sync(replace(base, apply_failure=ApplyFailure("Service/llm", 500, "etcdserver: request timed out")))
    assert cond(overloaded.status, "Stalled")["status"] == "False"


def test_a_dotted_model_name_gets_valid_distinct_child_names() -> None:
    md = model(name="llama-3.1-8b")
    d = sync(world(md, [GRA], nodes_of(gra=1)))
    names = {(o["kind"], o["metadata"]["name"]) for o in d.applies}
    service = model_service_name("llama-3.1-8b")
    assert ("Service", service) in names and "." not in service and len(service) <= 63
    assert d.status is not None and service in d.status["endpoints"]["http"]


def test_child_names_of_different_pairs_never_meet() -> None:
    assert regional_name("llm", "gra-eu") != regional_name("llm-gra", "eu")
    assert regional_name("llm", "gra") != model_service_name("llm-gra")
    long = "m" * 253
    assert len(regional_name(long, "r" * 253)) <= 63 and len(model_service_name(long)) <= 63


def test_a_second_pass_over_what_the_first_wrote_writes_nothing() -> None:
    md = model()
    first = sync(world(md, [GRA], nodes_of(gra=1)))
    assert first.status is not None
    live = {(o["kind"], o["metadata"]["name"]): o for o in first.applies}
    again = md.model_copy(update={"status": type(md.status).model_validate(first.status)})
    second = sync(replace(world(again, [GRA], nodes_of(gra=1)), owned=live))
    assert second.applies == () and second.evictions == () and second.prunes == ()


def test_a_renamed_deployment_is_kept_until_its_replacement_is_ready() -> None:
    md = model(replicas=1)
    old = deployment(md, "gra", 1)
    old["metadata"]["name"] = "llm-gra"  # the name before per-region names carried a hash
    new = deployment(md, "gra", 1, ready=0)
    w = world(md, [GRA], nodes_of(gra=1), [old, new])
    assert not [p for p in sync(w).prunes if p.kind == "Deployment"]
    w = world(md, [GRA], nodes_of(gra=1), [old, deployment(md, "gra", 1)])
    assert [p.name for p in sync(w).prunes if p.kind == "Deployment"] == ["llm-gra"]


def test_pods_of_a_paused_model_are_still_evicted() -> None:
    md = model(paused=True)
    w = world(md, [region("waw", ["PL"])], nodes_of(waw=1), [deployment(md, "waw", 1)], [pod("p", "waw", "waw-0")])
    d = sync(w)
    assert {e.kind for e in d.evictions} == {"Deployment", "Pod"}
    assert d.applies == ()
    assert cond(d.status, "ResidencyCompliant")["status"] == "False"


def test_nothing_is_written_in_kube_system_or_the_operators_own_namespace() -> None:
    for ns, settings in (
        ("kube-system", Settings()),
        ("meridian-system", Settings(operator_namespace="meridian-system")),
    ):
        md = model(namespace=ns)
        d = sync(world(md, [GRA], nodes_of(gra=1), [deployment(md, "waw", 1)], settings=settings))
        assert d.applies == () and d.evictions == () and d.prunes == ()
        assert cond(d.status, "Stalled")["reason"] == "ProtectedNamespace"
