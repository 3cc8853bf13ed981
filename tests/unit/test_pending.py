"""Pending explained: the scheduler's message decides between failover and Stalled."""

from __future__ import annotations

from typing import Any

import pytest
from tests.sync_worlds import deployment, model, nodes_of, pod, region, world

from meridian.placement.failover import hold_seconds
from meridian.sync import sync
from meridian.sync.pending import is_capacity

pytestmark = pytest.mark.unit

PREEMPT = " preemption: 0/81 nodes are available: 81 Preemption is not helpful for scheduling."


@pytest.mark.parametrize(
    "message",
    [
        "0/81 nodes are available: 4 Insufficient nvidia.com/gpu, 77 node(s) didn't match Pod's node affinity/selector."
        + PREEMPT,
        "0/75 nodes are available: 75 node(s) didn't match Pod's node affinity/selector." + PREEMPT,
        "0/81 nodes are available: 4 node(s) were unschedulable, 77 node(s) didn't match Pod's node affinity/selector.",
        "0/81 nodes are available: 4 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, 77 node(s) "
        "didn't match Pod's node affinity/selector.",
        "no nodes available to schedule pods",
    ],
)
def test_a_shortfall_of_room_is_capacity(message: str) -> None:
    assert is_capacity(message)


@pytest.mark.parametrize(
    "message",
    [
        '0/81 nodes are available: persistentvolumeclaim "models" not found.' + PREEMPT,
        "0/81 nodes are available: 4 node(s) had untolerated taint {maintenance: true}, 77 node(s) didn't match "
        "Pod's node affinity/selector." + PREEMPT,
        "0/81 nodes are available: pod has unbound immediate PersistentVolumeClaims." + PREEMPT,
    ],
)
def test_what_no_region_can_fix_is_not_capacity(message: str) -> None:
    assert not is_capacity(message)


UNNAMED = (
    "0/81 nodes are available: 4 node(s) had untolerated taint(s), 77 node(s) didn't match Pod's node "
    "affinity/selector." + PREEMPT
)


def test_an_unnamed_taint_on_nodes_not_ready_is_capacity() -> None:
    """kube-scheduler 1.37 no longer names the taint: 4 tainted nodes in a region with 4 not Ready
    are the node lifecycle controller's doing (a lost rack), so failover may help."""
    assert is_capacity(UNNAMED, unready_nodes=4)
    assert is_capacity(UNNAMED, unready_nodes=6)


def test_an_unnamed_taint_on_more_nodes_than_are_not_ready_is_someones_taint() -> None:
    assert not is_capacity(UNNAMED, unready_nodes=3)
    assert not is_capacity(UNNAMED)


def pending(name: str, region_name: str, message: str, since: str = "2001-01-01T00:00:00Z") -> dict[str, Any]:
    p = pod(name, region_name)
    p["status"]["conditions"] = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastTransitionTime": since,  # by default long past unschedulableSeconds
        }
    ]
    return p


def test_a_missing_claim_stalls_with_the_schedulers_words_and_moves_nothing() -> None:
    md = model(replicas=2, placement={"residency": ["EU"], "regions": [{"name": "gra"}, {"name": "rbx", "weight": 0}]})
    regions = [region("gra", ["EU"]), region("rbx", ["EU"])]
    message = '0/2 nodes are available: persistentvolumeclaim "models" not found.' + PREEMPT
    live = [deployment(md, "gra", 2, ready=0)]
    d = sync(
        world(md, regions, nodes_of(gra=1, rbx=1), live, [pending("a", "gra", message), pending("b", "gra", message)])
    )
    stalled = next(c for c in d.status["conditions"] if c["type"] == "Stalled")  # type: ignore[index]
    assert stalled["status"] == "True" and stalled["reason"] == "Unschedulable"
    assert 'persistentvolumeclaim "models" not found' in stalled["message"]
    moved = {o["metadata"]["labels"]["serving.meridian.dev/region"] for o in d.applies if o["kind"] == "Deployment"}
    assert "rbx" not in moved


def test_a_region_out_of_gpus_still_fails_over() -> None:
    md = model(replicas=2, placement={"residency": ["EU"], "regions": [{"name": "gra"}, {"name": "rbx", "weight": 0}]})
    regions = [region("gra", ["EU"]), region("rbx", ["EU"])]
    message = (
        "0/2 nodes are available: 1 Insufficient nvidia.com/gpu, 1 node(s) didn't match Pod's node affinity/selector."
    )
    live = [deployment(md, "gra", 2, ready=0)]
    d = sync(
        world(md, regions, nodes_of(gra=1, rbx=1), live, [pending("a", "gra", message), pending("b", "gra", message)])
    )
    moved = {o["metadata"]["labels"]["serving.meridian.dev/region"] for o in d.applies if o["kind"] == "Deployment"}
    assert "rbx" in moved


def test_a_failover_wait_says_when_it_ends_so_the_model_is_looked_at_then() -> None:
    """Nothing happens when a wait runs out: the pass says when, and the shell comes back at that moment."""
    failover = {"enabled": True, "unschedulableSeconds": 10}
    placement = {"residency": ["EU"], "regions": [{"name": "gra"}, {"name": "rbx", "weight": 0}], "failover": failover}
    md = model(replicas=2, placement=placement)
    regions = [region("gra", ["EU"]), region("rbx", ["EU"])]
    message = "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match Pod's node affinity/selector."
    live = [deployment(md, "gra", 2, ready=0)]
    # world() runs at 1e9 s = 2001-09-09T01:46:40Z; the pods have waited 3 s and 6 s of their 10
    waiting = [
        pending("a", "gra", message, "2001-09-09T01:46:37Z"),
        pending("b", "gra", message, "2001-09-09T01:46:34Z"),
    ]
    d = sync(world(md, regions, nodes_of(gra=1, rbx=1), live, waiting))
    assert d.wake_in == pytest.approx(4.0), "the older pod's wait ends first"
    assert not any(o["kind"] == "Deployment" and "rbx" in o["metadata"]["name"] for o in d.applies), "not yet"

    over = sync(world(md, regions, nodes_of(gra=1, rbx=1), live, [pending("a", "gra", message)]))
    moved = {o["metadata"]["labels"]["serving.meridian.dev/region"] for o in over.applies if o["kind"] == "Deployment"}
    assert "rbx" in moved, "the wait is over: this pass moves the replica"
    # gra's room is not counted in GPUs here, so nothing will say it came back: the hold set now
    # ends (and gra is tried again) after hold_seconds, and the pass says so
    assert over.wake_in == pytest.approx(hold_seconds(md.spec.placement.failover))


def test_pods_kept_off_nodes_not_ready_by_an_unnamed_taint_fail_over_not_stall() -> None:
    """gra's 2 nodes are not Ready (as its Region status says): the scheduler's unnamed taint is the
    node lifecycle controller's, so the replicas go to rbx once their wait is over."""
    md = model(replicas=2, placement={"residency": ["EU"], "regions": [{"name": "gra"}, {"name": "rbx", "weight": 0}]})
    gra = region("gra", ["EU"])
    gra.status.nodes, gra.status.ready_nodes = 2, 0
    message = (
        "0/3 nodes are available: 2 node(s) had untolerated taint(s), 1 node(s) didn't match Pod's node "
        "affinity/selector."
    )
    live = [deployment(md, "gra", 2, ready=0)]
    waiting = [pending("a", "gra", message), pending("b", "gra", message)]
    d = sync(world(md, [gra, region("rbx", ["EU"])], nodes_of(gra=2, rbx=1), live, waiting))
    stalled = next(c for c in d.status["conditions"] if c["type"] == "Stalled")  # type: ignore[index]
    assert stalled["status"] == "False"
    moved = {o["metadata"]["labels"]["serving.meridian.dev/region"] for o in d.applies if o["kind"] == "Deployment"}
    assert "rbx" in moved
