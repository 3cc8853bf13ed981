"""The watch caches: what a relist forgets, what the index finds, and GPUs per node kept incrementally
agree with counting them from scratch, whatever order pods come, change and go in."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes_asyncio import client as k8s

from meridian.placement.inventory import requested_by_node
from meridian.placement.promised import PROMISE_SECONDS
from meridian.reconcile import projections
from meridian.reconcile.caches import Caches, Listeners, matches, watch_plan
from meridian.reconcile.informer import Informer
from meridian.reconcile.kube import Kube
from meridian.sync.insync import in_sync
from meridian.sync.pending import unschedulable_condition

pytestmark = pytest.mark.unit

NO_KUBE = cast(Kube, None)  # stores are filled by hand here; nothing is sent


def pod(
    name: str, node: str = "", gpus: int = 0, phase: str = "Running", model: str = "", ns: str = "a"
) -> dict[str, Any]:
    labels = (
        {"app.kubernetes.io/managed-by": "meridian", "serving.meridian.dev/model-deployment": model} if model else {}
    )
    limits = {"nvidia.com/gpu": str(gpus)} if gpus else {}
    return {
        "metadata": {"name": name, "namespace": ns, "labels": labels, "managedFields": [{"manager": "x"}]},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i", "resources": {"limits": limits}}]},
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True"}]},
    }


def test_a_relist_drops_what_was_deleted_while_the_watch_was_down() -> None:
    changes: list[tuple[str, bool]] = []
    inf: Informer[dict[str, Any]] = Informer(
        NO_KUBE,
        "v1",
        "Pod",
        namespaces=("a", "b"),
        project=projections.pod,
        index_by=projections.model_of_pod,
        on_change=lambda k, old, new: changes.append((k[1], new is not None)),
    )
    inf._replace("a", [pod("p1", model="m"), pod("p2", model="m")])
    inf._replace("b", [pod("q1", model="m", ns="b")])
    assert set(inf.by(("a", "m"))) == {("a", "p1"), ("a", "p2")}

    inf._replace("a", [pod("p2", model="m")])  # p1 went while we were not watching

    assert inf.get("a", "p1") is None and set(inf.by(("a", "m"))) == {("a", "p2")}
    assert inf.get("b", "q1") is not None, "a relist of one namespace leaves the others alone"
    assert ("p1", False) in changes
    assert changes.count(("p2", True)) == 1, "an unchanged object is no change"


def test_a_listed_child_is_in_sync_with_what_we_apply() -> None:
    """List items have no kind of their own; a restarted operator must not re-apply every child."""
    inf: Informer[dict[str, Any]] = Informer(NO_KUBE, "v1", "ConfigMap", project=projections.owned)
    desired = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m", "namespace": "a"}, "data": {"k": "v"}}
    listed = {"metadata": {"name": "m", "namespace": "a", "managedFields": [{}]}, "data": {"k": "v"}}
    inf._replace("", [listed])
    live = inf.get("a", "m")
    assert live is not None and in_sync(desired, live)


def test_a_meridian_pod_is_kept_with_its_status_and_anyone_elses_only_when_it_holds_gpus() -> None:
    ours = projections.pod(pod("p", node="n1", gpus=2, model="m"))
    assert ours is not None
    assert "managedFields" not in ours["metadata"] and "containers" not in ours["spec"]
    assert ours["status"]["conditions"] and ours[projections.GPUS] == 2
    assert projections.pod(pod("web", node="n1")) is None  # no GPUs: capacity does not care
    assert projections.pod(pod("batch", node="n1", gpus=1, phase="Succeeded")) is None
    assert projections.pod(pod("train", gpus=4)) is None  # not scheduled yet
    theirs = projections.pod(pod("train", node="n2", gpus=4))
    assert theirs is not None and projections.gpus_held(theirs) == ("n2", 4)
    assert "conditions" not in theirs["status"]


def test_a_node_heartbeat_is_no_change() -> None:
    def node(beat: str) -> dict[str, Any]:
        cond = {"type": "Ready", "status": "True", "lastHeartbeatTime": beat}
        return {"metadata": {"name": "n", "labels": {"x": "1"}}, "status": {"conditions": [cond]}}

    assert projections.node(node("10:00:00")) == projections.node(node("10:00:20"))


EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["p1", "p2", "p3", "p4"]),
        st.one_of(
            st.none(),  # deleted
            st.tuples(
                st.sampled_from(["", "n1", "n2"]), st.integers(0, 4), st.sampled_from(["Pending", "Running", "Failed"])
            ),
        ),
        st.booleans(),  # ours or someone else's
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(EVENTS)
def test_gpus_per_node_kept_incrementally_match_a_count_from_scratch(events: list[Any]) -> None:
    caches = Caches(NO_KUBE, listeners=Listeners())
    live: dict[str, dict[str, Any]] = {}
    for name, change, ours in events:
        if change is None:
            live.pop(name, None)
            caches.pods._set(("a", name), None)
        else:
            node, gpus, phase = change
            obj = pod(name, node=node, gpus=gpus, phase=phase, model="m" if ours else "")
            live[name] = obj
            caches.pods._set(("a", name), projections.pod(obj))
        assert caches.requested == {n: g for n, g in requested_by_node(live.values()).items() if g}


@pytest.mark.parametrize(
    ("pattern", "inside", "outside"),
    [
        ("!own-*", ["default", "e2e-1"], ["own-1"]),
        ("team-*", ["team-a"], ["default"]),
        ("app-*, !*-pr-*, *-pr-1", ["app-x", "app-pr-1"], ["app-pr-2", "other-pr-1"]),
    ],
)
def test_namespace_patterns_mean_what_they_mean_to_kopf(pattern: str, inside: list[str], outside: list[str]) -> None:
    assert all(matches(ns, pattern) for ns in inside) and not any(matches(ns, pattern) for ns in outside)
    where, watched = watch_plan([pattern])
    assert where == ("",) and all(watched(ns) for ns in inside) and not any(watched(ns) for ns in outside)


def test_named_namespaces_are_watched_each_on_its_own() -> None:
    assert watch_plan(["a", "b"])[0] == ("a", "b") and watch_plan([])[0] == ("",)


def test_claims_follow_a_relabelled_node_a_new_selector_and_a_node_gone() -> None:
    """The Region each node belongs to is kept between reconciles; it must not outlive a change."""
    caches = Caches(NO_KUBE)

    def region(name: str, selector: dict[str, str] | None = None) -> dict[str, Any]:
        return {
            "apiVersion": "serving.meridian.dev/v1alpha1",
            "kind": "Region",
            "metadata": {"name": name},
            "spec": {"country": "FR", "jurisdictions": ["EU"], **({"nodeSelector": selector} if selector else {})},
        }

    def node(name: str, region: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "labels": {"node-restriction.kubernetes.io/region": region}}}

    caches.regions._replace("", [region("gra"), region("rbx")])
    caches.nodes._replace("", [node("n1", "gra"), node("n2", "rbx")])
    assert caches.claims().region_of("n1") == "gra"

    caches.nodes._replace("", [node("n1", "rbx"), node("n2", "rbx")])  # n1 relabelled
    assert caches.claims().region_of("n1") == "rbx"

    caches.regions._replace("", [region("gra", {"node-restriction.kubernetes.io/region": "rbx"}), region("rbx")])
    assert caches.claims().owners("n2") == ("gra", "rbx"), "a selector pointed at rbx's nodes contests them"

    caches.nodes._replace("", [node("n2", "rbx")])  # n1 gone
    assert caches.claims().owners("n1") == ()


def test_a_member_cluster_is_watched_while_a_region_names_it_and_not_ready_while_it_does_not_answer() -> None:
    async def scenario() -> None:
        heard: list[str] = []
        kube = Kube(k8s.ApiClient())  # never sent anything: the stores are filled by hand
        caches = Caches(kube, listeners=Listeners(capacity=lambda: heard.append("capacity")))
        region = {"metadata": {"name": "gra"}, "spec": {"country": "FR", "jurisdictions": ["EU"], "clusters": ["gra"]}}
        caches.regions._replace("", [region])
        member = caches.members["gra"]
        assert member.nodes.kube.prefix == "/apis/cluster.karmada.io/v1alpha1/clusters/gra/proxy"
        node = {
            "metadata": {"name": "n0", "labels": {"node-restriction.kubernetes.io/region": "gra"}},
            "status": {
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]
            },
        }
        member.nodes._replace("", [node])
        assert [n["metadata"]["name"] for n in caches.all_nodes()] == ["gra/n0"]
        assert caches.claims().region_of("gra/n0") == "gra"
        member.pods._replace("a", [pod("p0", node="n0", gpus=1, model="llm")])
        (cached,) = caches.pods_of("a", "llm")
        assert cached["spec"]["nodeName"] == "gra/n0" and cached[projections.CLUSTER] == "gra"
        assert caches.requested == {"gra/n0": 1}

        member._reach(False)
        (down,) = caches.all_nodes()
        assert down["status"]["conditions"][0]["status"] == "Unknown"
        assert down["status"]["conditions"][0]["lastTransitionTime"] == member.unreachable_since
        (waiting,) = caches.pods_of("a", "llm")  # its replicas wait to be placed from then: failover's hold
        assert waiting["status"]["phase"] == "Pending"
        assert unschedulable_condition(waiting)["lastTransitionTime"] == member.unreachable_since  # type: ignore[index]
        member._reach(True)
        assert caches.all_nodes()[0]["status"]["conditions"][0]["status"] == "True"
        assert heard.count("capacity") >= 2

        caches.regions._replace("", [])  # no Region names it any more: forgotten, nodes and pods
        assert "gra" not in caches.members
        await caches.stop()
        assert caches.all_nodes() == [] and caches.pods_of("a", "llm") == [] and caches.requested == {}
        await kube.close()

    asyncio.run(scenario())


def test_gpus_promised_follow_deployments_written_and_their_pods_placed() -> None:
    """A regional Deployment promises its replicas' GPUs until a node holds each pod, or the
    scheduler finds no room for it; what a model promised itself is not held against it."""
    caches = Caches(NO_KUBE, listeners=Listeners())

    def deployment(model: str, replicas: int, gpus: int = 2) -> dict[str, Any]:
        labels = {
            "app.kubernetes.io/managed-by": "meridian",
            "serving.meridian.dev/model-deployment": model,
            "serving.meridian.dev/region": "gra",
        }
        limits = {"nvidia.com/gpu": str(gpus)}
        template = {"spec": {"containers": [{"name": "c", "image": "i", "resources": {"limits": limits}}]}}
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": f"{model}-gra", "namespace": "a", "labels": labels},
            "spec": {"replicas": replicas, "template": template},
        }

    def regional_pod(name: str, model: str, node: str = "", refused: bool = False) -> dict[str, Any]:
        obj = pod(name, node=node, gpus=2, phase="Running" if node else "Pending", model=model)
        obj["metadata"]["labels"]["serving.meridian.dev/region"] = "gra"
        if refused:
            obj["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]
        return obj

    deployments = caches.children["Deployment"]
    deployments._set(("a", "m1-gra"), projections.packed(deployment("m1", 3)))
    assert caches.promised("a", "m2") == {"gra": 6}
    assert caches.promised("a", "m1") == {}
    caches.pods._set(("a", "p1"), projections.pod(regional_pod("p1", "m1", node="n1")))
    caches.pods._set(("a", "p2"), projections.pod(regional_pod("p2", "m1", refused=True)))
    caches.pods._set(("a", "p3"), projections.pod(regional_pod("p3", "m1")))  # not yet looked at
    assert caches.promised("a", "m2") == {"gra": 2}
    deployments._set(("a", "m1-gra"), projections.packed(deployment("m1", 1)))  # scaled down
    assert caches.promised("a", "m2") == {}
    caches.pods._set(("a", "p1"), None)  # gone: the replica it held is on its way again
    assert caches.promised("a", "m2") == {}
    deployments._set(("a", "m1-gra"), projections.packed(deployment("m1", 3)))  # p2 refused, two on their way
    assert caches.promised("a", "m2") == {"gra": 4}
    deployments._set(("a", "m1-gra"), None)
    assert caches.promised("a", "m2") == {} and caches.asked == {}

    # a Deployment about to be applied is promised before its watch event, and not after a failed apply
    caches.expect([deployment("m3", 2)])
    assert caches.promised("a", "m2") == {"gra": 4}
    assert caches.promised("a", "m2", now=time.monotonic() + PROMISE_SECONDS) == {}  # not on its way after all
    caches.unexpect([deployment("m3", 2)])
    assert caches.promised("a", "m2") == {}
