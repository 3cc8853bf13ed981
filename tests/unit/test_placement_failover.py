"""Failover, return, drain and eviction, pass by pass, as the reconcile loop would run them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from meridian.api.modeldeployment import ModelDeploymentSpec
from meridian.api.region import Region
from meridian.placement.plan import Hold, Observed, Plan, plan

pytestmark = pytest.mark.unit

H100 = "H100-80GB-HBM3"


def region(
    name: str, free: int | None = 8, *, own: int = 0, jurisdictions: tuple[str, ...] = ("EU",), cordoned: bool = False
) -> Region:
    """A region with `free` H100s besides `own` GPUs used by this model's scheduled pods (None: no status)."""
    doc: dict[str, Any] = {
        "metadata": {"name": name},
        "spec": {"country": "FR", "jurisdictions": list(jurisdictions), "cordoned": cordoned},
    }
    if free is not None:
        total = free + own
        pools = [{"product": H100, "memoryMiB": 81559, "capacity": total, "allocatable": total, "requested": own}]
        doc["status"] = {
            "nodes": 1 if total else 0,
            "gpus": pools if total else [],
            "conditions": [{"type": "Ready", "status": "True" if total else "False"}],
        }
    return Region.model_validate(doc)


def spec(replicas: int = 3, *, failover: bool = True, surge: int = 1, **placement: Any) -> ModelDeploymentSpec:
    placement.setdefault("regions", [{"name": "gra", "weight": 2}, {"name": "rbx", "weight": 1}])
    return ModelDeploymentSpec.model_validate(
        {
            "model": {"format": "onnx", "storageUri": "s3://models/m"},
            "resources": {"gpu": {"products": [H100]}},
            "replicas": replicas,
            "placement": {**placement, "failover": {"enabled": failover, "unschedulableSeconds": 120}},
            "rollout": {"maxSurge": surge},
        }
    )


def moves(p: Plan) -> list[tuple[str, str, int, str]]:
    return [(m.from_region, m.to_region, m.count, m.kind) for m in p.moves]


def kept_ready(ready: dict[str, int], p: Plan) -> int:
    targets = p.replicas_by_region()
    return sum(min(n, targets.get(r, 0)) for r, n in ready.items())


STUCK = Observed(
    replicas={"gra": 2, "rbx": 1}, unschedulable={"gra": 2}, unschedulable_since={"gra": 1000.0}, ready={"rbx": 1}
)


def test_unschedulable_replicas_wait_for_the_failover_delay() -> None:
    fleet = [region("gra", 8), region("rbx", 7, own=1)]
    obs = replace(STUCK, now=1030.0)
    p = plan(spec(), fleet, obs)
    assert p.replicas_by_region() == {"gra": 2, "rbx": 1}
    assert p.moves == () and p.held == {}
    assert "2 replicas unschedulable for 30s; failover after 120s" in p.targets[0].reason


def test_failover_moves_unschedulable_replicas_and_holds_the_region() -> None:
    fleet = [region("gra", 8), region("rbx", 7, own=1)]
    p = plan(spec(), fleet, replace(STUCK, now=1130.0))
    assert p.replicas_by_region() == {"rbx": 3}
    assert moves(p) == [("gra", "rbx", 2, "Failover")]
    assert p.moves[0].reason == "failover from gra: 2 replicas unschedulable for 130s"
    assert "failover from gra: 2 replicas unschedulable for 130s" in p.targets[0].reason
    assert p.displaced == 2 and not p.satisfied
    assert "gra runs 0 of 2: failover from gra" in p.message
    assert p.held == {"gra": Hold(0, 8, 1130.0)}
    assert [(e.region, e.rule) for e in p.excluded] == [("gra", "failover")]


def test_failover_disabled_keeps_them_and_says_so() -> None:
    fleet = [region("gra", 8), region("rbx", 7, own=1)]
    p = plan(spec(failover=False), fleet, replace(STUCK, now=5000.0))
    assert p.replicas_by_region() == {"gra": 2, "rbx": 1}
    assert "2 replicas unschedulable for 4000s; failover disabled" in p.targets[0].reason
    assert p.moves == () and p.held == {}


def test_failover_never_goes_to_a_region_outside_residency() -> None:
    fleet = [region("gra", 8), region("eri", 64, jurisdictions=("UK",)), region("rbx", 0, own=1)]
    s = spec(residency=["EU"], regions=[])
    p = plan(s, fleet, replace(STUCK, now=1130.0))
    assert "eri" not in p.replicas_by_region()
    assert all(m.to_region != "eri" for m in p.moves)
    assert p.unplaced > 0  # nowhere qualifying has room: they wait where they are


def test_hold_sticks_then_replicas_return_surge_first_when_capacity_grows() -> None:
    s = spec()
    first = plan(s, [region("gra", 8), region("rbx", 7, own=1)], replace(STUCK, now=1130.0))

    # next pass: the unschedulable pods are gone, gra's status still shows the same free GPUs
    obs = Observed(replicas={"rbx": 3}, ready={"rbx": 1}, held=first.held, now=1190.0)
    held = plan(s, [region("gra", 8), region("rbx", 5, own=3)], obs)
    assert held.replicas_by_region() == {"rbx": 3} and held.moves == ()
    assert held.excluded[0].reason == "failover from gra: held at 0 for 60s until its capacity grows"

    # gra's capacity grows (nodes added): back, one replica at a time, rbx lowered only once gra's are ready
    fleet = [region("gra", 16), region("rbx", 5, own=3)]
    history = []
    obs = Observed(replicas={"rbx": 3}, ready={"rbx": 3}, held=first.held, now=1300.0)
    for _ in range(10):
        p = plan(s, fleet, obs)
        ready = dict(obs.ready or {})
        assert kept_ready(ready, p) >= min(sum(ready.values()), 3), "ready capacity dropped"
        history.append(p.replicas_by_region())
        if p.moves == ():
            break
        targets = p.replicas_by_region()
        obs = Observed(replicas=targets, ready=targets, held=p.held, now=obs.now + 60)  # all pods become ready
    assert history == [
        {"gra": 1, "rbx": 3},
        {"gra": 2, "rbx": 2},
        {"gra": 2, "rbx": 1},
        {"gra": 2, "rbx": 1},
    ]
    assert p.satisfied and p.held == {}


def test_surge_waits_for_readiness_before_lowering() -> None:
    fleet = [region("gra", 16), region("rbx", 5, own=3)]
    obs = Observed(replicas={"gra": 1, "rbx": 3}, ready={"gra": 0, "rbx": 3}, now=1.0)
    p = plan(spec(), fleet, obs)
    assert p.replicas_by_region() == {"gra": 1, "rbx": 3}  # nothing to do until gra's replica is ready
    assert p.moves == ()
    assert "2 kept until replacements elsewhere are ready (surge first)" in p.targets[1].reason
    assert "1 more once the replicas already moving are ready (maxSurge 1)" in p.targets[0].reason


def test_a_larger_max_surge_moves_faster() -> None:
    fleet = [region("gra", 16), region("rbx", 5, own=3)]
    p = plan(spec(surge=2), fleet, Observed(replicas={"rbx": 3}, ready={"rbx": 3}))
    assert p.replicas_by_region() == {"gra": 2, "rbx": 3}
    assert moves(p) == [("rbx", "gra", 2, "Rebalance")]
    assert "rbx keeps 2 until gra has them ready (surge first)" in p.moves[0].reason


def test_hold_is_lifted_after_a_while_to_probe() -> None:
    s = spec()
    held = {"gra": Hold(0, 8, 1000.0)}
    fleet = [region("gra", 8), region("rbx", 5, own=3)]
    assert plan(s, fleet, Observed(replicas={"rbx": 3}, held=held, now=1500.0)).replicas_by_region() == {"rbx": 3}
    p = plan(s, fleet, Observed(replicas={"rbx": 3}, held=held, now=1600.0))  # 5 × 120 s later
    assert p.replicas_by_region() == {"gra": 1, "rbx": 3}
    assert p.held == {}


def test_capacity_loss_in_status_spills_at_once() -> None:
    # gra lost half its nodes: its status says 1 replica fits; no need to wait for unschedulable pods
    fleet = [region("gra", 0, own=1), region("rbx", 7, own=1)]
    obs = Observed(replicas={"gra": 2, "rbx": 1}, unschedulable={"gra": 1}, unschedulable_since={"gra": 0.0}, now=1.0)
    p = plan(spec(), fleet, obs)
    assert p.replicas_by_region() == {"gra": 1, "rbx": 2}
    assert moves(p) == [("gra", "rbx", 1, "Capacity")]
    assert p.moves[0].reason == "gra capped by capacity: 0 free GPUs / 1 per replica (+1 running here)"


def test_all_nodes_lost_drains_the_region_and_they_come_back_with_the_nodes() -> None:
    s = spec()
    obs = Observed(replicas={"gra": 2, "rbx": 1}, unschedulable={"gra": 2}, unschedulable_since={"gra": 0.0}, now=1.0)
    p = plan(s, [region("gra", 0), region("rbx", 7, own=1)], obs)
    assert p.replicas_by_region() == {"rbx": 3}
    assert moves(p) == [("gra", "rbx", 2, "Drain")]
    assert p.moves[0].reason == f"draining gra: has no GPU product {H100}"
    back = plan(s, [region("gra", 16), region("rbx", 5, own=3)], Observed(replicas={"rbx": 3}))
    assert back.replicas_by_region() == {"gra": 1, "rbx": 3}


def test_cordon_drains_surge_first_and_never_adds_there() -> None:
    s = spec(regions=[])
    fleet = [region("gra", 6, own=2, cordoned=True), region("rbx", 7, own=1), region("sbg", 8)]
    obs = Observed(replicas={"gra": 2, "rbx": 1}, ready={"gra": 2, "rbx": 1})
    seen = []
    for _ in range(10):
        p = plan(s, fleet, obs)
        ready = dict(obs.ready or {})
        assert kept_ready(ready, p) >= min(sum(ready.values()), 3)
        assert p.replicas_by_region().get("gra", 0) <= obs.replicas.get("gra", 0)
        seen.append(p.replicas_by_region())
        if p.moves == ():
            break
        assert {m.kind for m in p.moves} <= {"Drain"}
        obs = Observed(replicas=p.replicas_by_region(), ready=p.replicas_by_region())
    assert seen[0] == {"gra": 2, "rbx": 2}  # one extra replica at a time (maxSurge 1)
    first = plan(s, fleet, Observed(replicas={"gra": 2, "rbx": 1}, ready={"gra": 2, "rbx": 1}))
    assert [(e.region, e.rule) for e in first.excluded] == [("sbg", "moving")]
    assert (
        first.excluded[0].reason == "weight 1 of 2; 1 to come once the replicas already moving are ready (maxSurge 1)"
    )
    assert (
        "draining: cordoned; kept until replacements are ready (surge first)"
        in plan(s, fleet, Observed(replicas={"gra": 2, "rbx": 1}, ready={"gra": 2, "rbx": 1})).targets[0].reason
    )
    assert seen[-1] == {"rbx": 2, "sbg": 1}


def test_residency_violations_are_evicted_at_once() -> None:
    s = spec(residency=["EU"], regions=[])
    fleet = [region("gra", 8), region("eri", 8, jurisdictions=("UK",))]
    p = plan(s, fleet, Observed(replicas={"eri": 3}, ready={"eri": 3}))
    assert p.replicas_by_region() == {"gra": 3}
    assert moves(p) == [("eri", "gra", 3, "Evict")]
    assert p.moves[0].reason == "eri lacks jurisdiction EU"


def test_excluded_regions_are_emptied_at_once_and_a_deleted_region_with_residency_too() -> None:
    s = spec(residency=["EU"], regions=[], excludeRegions=["rbx"])
    fleet = [region("gra", 8), region("rbx", 8)]
    p = plan(s, fleet, Observed(replicas={"rbx": 2, "old": 1}, ready={"rbx": 2, "old": 1}))
    assert p.replicas_by_region() == {"gra": 3}
    assert {(m.from_region, m.kind) for m in p.moves} == {("old", "Evict"), ("rbx", "Evict")}


def test_a_region_dropped_from_the_allow_list_is_evicted_at_once() -> None:
    # the allow list is where the model may run: a region taken off it is no longer allowed, as with
    # excludeRegions, so nothing stays there waiting for replacements
    s = spec(regions=[{"name": "gra"}])
    p = plan(s, [region("gra", 8), region("rbx", 8)], Observed(replicas={"rbx": 3}, ready={"rbx": 3}))
    assert p.replicas_by_region() == {"gra": 3}
    assert {(m.from_region, m.kind) for m in p.moves} == {("rbx", "Evict")}


def test_an_untrusted_region_is_never_used_and_its_replicas_are_evicted() -> None:
    fleet = [region("gra", 8), region("rbx", 8)]
    untrusted = {"rbx": "shares node n1 with Region eri"}
    p = plan(spec(), fleet, Observed(replicas={"rbx": 2}, ready={"rbx": 2}), untrusted=untrusted)
    assert p.replicas_by_region() == {"gra": 3}
    assert ("rbx", "Evict") in {(m.from_region, m.kind) for m in p.moves}
    assert next(e for e in p.excluded if e.region == "rbx").rule == "untrusted"


def test_a_draining_region_keeps_serving_when_nothing_can_replace_it() -> None:
    s = spec(regions=[{"name": "gra", "maxReplicas": 1}, {"name": "rbx"}])
    fleet = [region("gra", 8), region("rbx", 8, cordoned=True)]
    p = plan(s, fleet, Observed(replicas={"gra": 1, "rbx": 2}, ready={"gra": 1, "rbx": 2}))
    assert p.replicas_by_region() == {"gra": 1, "rbx": 2}
    assert not p.satisfied


def test_without_readiness_a_scheduled_replica_counts_as_ready() -> None:
    # the reconcile loop should pass Observed.ready; without it a surge completes on the next pass
    fleet = [region("gra", 16), region("rbx", 5, own=3)]
    p = plan(spec(), fleet, Observed(replicas={"gra": 1, "rbx": 3}))
    assert p.replicas_by_region() == {"gra": 2, "rbx": 2}
