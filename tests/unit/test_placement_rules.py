"""Each placement rule and each reason a person reads, one example at a time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from meridian.api.modeldeployment import ModelDeploymentSpec
from meridian.api.region import Region
from meridian.placement.capacity import grace_ends_in
from meridian.placement.plan import ANY_REGION, Observed, Plan, plan, split_by_weight

pytestmark = pytest.mark.unit

H100 = "H100-80GB-HBM3"
A100 = "A100-SXM4-80GB"


def region(
    name: str,
    jurisdictions: tuple[str, ...] = ("EU", "EEA", "FR"),
    *,
    gpus: list[tuple[str, int, int]] | None = None,
    memory: int = 81559,
    cordoned: bool = False,
    shapes: list[dict[str, Any]] | None = None,
) -> Region:
    """A Region; `gpus` is [(product, allocatable, requested)] or None for a status never reported;
    `shapes` the node sizes of every pool (none: not reported)."""
    doc: dict[str, Any] = {
        "metadata": {"name": name},
        "spec": {"country": "FR", "jurisdictions": list(jurisdictions), "cordoned": cordoned},
    }
    if gpus is not None:
        doc["status"] = {
            "nodes": max(1, len(gpus)),
            "gpus": [
                {"product": p, "memoryMiB": memory, "capacity": a, "allocatable": a, "requested": r}
                | ({"shapes": shapes} if shapes is not None else {})
                for p, a, r in gpus
            ],
            "conditions": [{"type": "Ready", "status": "True"}],
        }
    return Region.model_validate(doc)


def spec(replicas: int = 3, *, tp: int = 1, products: tuple[str, ...] = (), **placement: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {
            "model": {"format": "onnx", "storageUri": "s3://models/m"},
            "runtime": {"tensorParallelSize": tp},
            "resources": {"gpu": {"products": list(products)}},
            "replicas": replicas,
            "placement": placement,
        }
    )


def reasons(p: Plan) -> dict[str, str]:
    return {t.region: t.reason for t in p.targets}


def excluded(p: Plan) -> dict[str, str]:
    return {e.region: e.reason for e in p.excluded}


EU = [region("gra"), region("rbx"), region("lim", ("EU", "EEA", "DE")), region("eri", ("UK",))]


# --- no Regions ------------------------------------------------------------------------------------


def test_without_regions_and_residency_one_region_agnostic_target() -> None:
    p = plan(spec(2), [], Observed())
    assert p.replicas_by_region() == {ANY_REGION: 2}
    assert p.targets[0].node_selector == {}
    assert not p.stalled


def test_without_regions_but_with_residency_it_stalls() -> None:
    p = plan(spec(2, residency=["EU"]), [], Observed())
    assert p.stalled and p.targets == ()
    assert p.problems[0].reason == "NoRegions" and "EU" in p.problems[0].message


# --- rule 1: residency ---------------------------------------------------------------------------------


def test_residency_excludes_regions_lacking_a_jurisdiction() -> None:
    p = plan(spec(3, residency=["EU"]), EU, Observed())
    assert set(p.replicas_by_region()) == {"gra", "lim", "rbx"}
    assert excluded(p) == {"eri": "lacks jurisdiction EU"}
    assert {e.rule for e in p.excluded} == {"residency"}


def test_residency_needs_every_tag() -> None:
    p = plan(spec(2, residency=["EU", "FR"]), EU, Observed())
    assert set(p.replicas_by_region()) == {"gra", "rbx"}
    assert excluded(p)["lim"] == "lacks jurisdiction FR"
    assert excluded(p)["eri"] == "lacks jurisdictions EU, FR"


def test_no_region_with_the_jurisdiction_stalls_naming_it() -> None:
    p = plan(spec(2, residency=["CH"]), EU, Observed())
    assert p.stalled and p.targets == ()
    assert p.problems[0].reason == "NoQualifyingRegion"
    assert p.problems[0].message == "no region carries jurisdiction CH"


def test_tags_carried_apart_but_never_together() -> None:
    p = plan(spec(2, residency=["DE", "FR"]), EU, Observed())
    assert p.problems[0].message == "no region carries all of jurisdictions DE, FR together"


# --- rule 2: allow list --------------------------------------------------------------------------------


def test_allow_list_limits_regions() -> None:
    p = plan(spec(3, regions=[{"name": "gra"}, {"name": "lim"}]), EU, Observed())
    assert set(p.replicas_by_region()) == {"gra", "lim"}
    assert excluded(p)["rbx"] == "not in spec.placement.regions"


def test_unknown_region_in_allow_list_stalls_naming_it() -> None:
    p = plan(spec(2, regions=[{"name": "gra"}, {"name": "atlantis"}]), EU, Observed())
    assert p.stalled and p.targets == ()
    assert p.problems[0].reason == "UnknownRegion"
    assert p.problems[0].message == "spec.placement.regions names unknown region atlantis"


def test_allowed_regions_lacking_the_jurisdiction_name_it_and_who_has_it() -> None:
    p = plan(spec(2, residency=["UK"], regions=[{"name": "gra"}]), EU, Observed())
    assert p.problems[0].reason == "NoQualifyingRegion"
    assert p.problems[0].message == "no region in spec.placement.regions carries jurisdiction UK (regions that do: eri)"


# --- rule 3: excludeRegions ----------------------------------------------------------------------------


def test_exclude_regions() -> None:
    p = plan(spec(2, residency=["EU"], excludeRegions=["lim"]), EU, Observed())
    assert set(p.replicas_by_region()) == {"gra", "rbx"}
    assert excluded(p)["lim"] == "in spec.placement.excludeRegions"


def test_everything_excluded_stalls() -> None:
    p = plan(spec(2, residency=["FR"], excludeRegions=["gra", "rbx"]), EU, Observed())
    assert p.problems[0].message == (
        "every allowed region with jurisdiction FR is in spec.placement.excludeRegions: gra, rbx"
    )


# --- rule 4: cordoned ----------------------------------------------------------------------------------


def test_cordoned_region_gets_nothing_new() -> None:
    fleet = [region("gra", cordoned=True), region("rbx")]
    p = plan(spec(2), fleet, Observed())
    assert p.replicas_by_region() == {"rbx": 2}
    assert excluded(p)["gra"] == "cordoned"


def test_every_region_cordoned_stalls() -> None:
    p = plan(spec(2, residency=["EU"]), [region("gra", cordoned=True), region("eri", ("UK",))], Observed())
    assert p.problems[0].message == "every qualifying region is cordoned: gra"


# --- rule 5: GPU product and memory ----------------------------------------------------------------------


def test_region_without_the_product_is_excluded_and_a_single_one_pins_the_model() -> None:
    fleet = [region("gra", gpus=[(H100, 16, 0)]), region("rbx", gpus=[(A100, 16, 0)]), region("lim", gpus=[])]
    p = plan(spec(3, products=(H100,)), fleet, Observed())
    assert p.replicas_by_region() == {"gra": 3}
    assert excluded(p) == {"lim": f"has no GPU product {H100}", "rbx": f"has no GPU product {H100}"}


def test_no_region_with_the_product_stalls_naming_it() -> None:
    fleet = [region("gra", gpus=[(H100, 16, 0)]), region("rbx", gpus=[(A100, 16, 0)])]
    p = plan(spec(1, products=("H200",)), fleet, Observed())
    assert p.problems[0].reason == "NoGpuProduct"
    assert p.problems[0].message == "no qualifying region has GPU product H200 (checked: gra, rbx)"


def test_gpu_memory_is_matched() -> None:
    fleet = [region("gra", gpus=[(A100, 16, 0)], memory=40960), region("rbx", gpus=[(A100, 16, 0)])]
    s = spec(1)
    s.resources.gpu.min_memory_mi_b = 80000
    p = plan(s, fleet, Observed())
    assert p.replicas_by_region() == {"rbx": 1}
    assert excluded(p)["gra"] == "has no GPUs with at least 80000 MiB"


EIGHT_GPU_NODE = {"gpus": 8, "cpu": "192", "memory": "2Ti", "nodes": 4}


def sized(replicas: int, *, tp: int = 1, cpu: str | int = "8", memory: str = "64Gi") -> ModelDeploymentSpec:
    s = spec(replicas, tp=tp)
    s.resources.cpu, s.resources.memory = cpu, memory
    return s


@pytest.mark.parametrize(
    ("tp", "cpu", "memory", "needs"),
    [
        (16, "8", "64Gi", "16 GPUs, cpu 8, memory 64Gi"),  # more GPUs than any node has
        (1, 4096, "64Gi", "1 GPU, cpu 4096, memory 64Gi"),
        (1, "8", "3Ti", "1 GPU, cpu 8, memory 3Ti"),
    ],
)
def test_a_replica_no_node_can_hold_stalls_instead_of_waiting_for_capacity(
    tp: int, cpu: str | int, memory: str, needs: str
) -> None:
    fleet = [
        region("gra", gpus=[(H100, 32, 0)], shapes=[EIGHT_GPU_NODE]),
        region("rbx", gpus=[(A100, 16, 0)], shapes=[EIGHT_GPU_NODE | {"cpu": "128"}]),
    ]
    p = plan(sized(2, tp=tp, cpu=cpu, memory=memory), fleet, Observed())
    assert [q.reason for q in p.problems] == ["NoNodeFits"]
    assert p.problems[0].message == (
        f"one replica requests {needs}, more than any node holds "
        f"(gra: {H100} node: 8 GPUs, cpu 192, memory 2Ti; rbx: {A100} node: 8 GPUs, cpu 128, memory 2Ti)"
    )


def test_a_region_whose_nodes_are_too_small_is_excluded_and_the_others_serve() -> None:
    fleet = [
        region("gra", gpus=[(H100, 32, 0)], shapes=[EIGHT_GPU_NODE]),
        region("rbx", gpus=[(A100, 16, 0)], shapes=[EIGHT_GPU_NODE | {"cpu": "128"}]),
    ]
    p = plan(sized(2, cpu="150"), fleet, Observed())
    assert p.replicas_by_region() == {"gra": 2}
    assert (
        excluded(p)["rbx"] == f"has no node that holds one replica (largest: {A100} node: 8 GPUs, cpu 128, memory 2Ti)"
    )


def test_node_sizes_not_reported_or_requests_not_quantities_are_left_to_the_scheduler() -> None:
    assert not plan(sized(1, cpu=4096), [region("gra", gpus=[(H100, 32, 0)])], Observed()).stalled
    fleet = [region("gra", gpus=[(H100, 32, 0)], shapes=[EIGHT_GPU_NODE])]
    assert not plan(sized(1, cpu="lots"), fleet, Observed()).stalled  # the API server refuses the Deployment


def test_full_region_still_qualifies_it_is_capacity_not_qualification() -> None:
    p = plan(spec(1, products=(H100,)), [region("gra", gpus=[(H100, 8, 8)])], Observed())
    assert not p.stalled
    assert p.unplaced == 1 and not p.satisfied


# --- the split -----------------------------------------------------------------------------------------


def test_weights_split_with_readable_reasons() -> None:
    p = plan(spec(3, regions=[{"name": "gra", "weight": 2}, {"name": "rbx", "weight": 1}]), EU, Observed())
    assert p.replicas_by_region() == {"gra": 2, "rbx": 1}
    assert reasons(p)["gra"].startswith("weight 2 of 3")
    assert reasons(p)["rbx"].startswith("weight 1 of 3")
    assert p.satisfied and p.message == "placed: gra=2, rbx=1"


def test_minimum_is_granted_before_the_weighted_split() -> None:
    s = spec(2, regions=[{"name": "gra", "weight": 2, "minReplicas": 1}, {"name": "rbx", "weight": 1}])
    p = plan(s, EU, Observed())
    assert p.replicas_by_region() == {"gra": 2}  # 1 + 2/3 of 1 rounds up; rbx gets 1/3
    s = spec(4, regions=[{"name": "gra", "weight": 1}, {"name": "rbx", "weight": 1, "minReplicas": 2}])
    p = plan(s, EU, Observed())
    assert p.replicas_by_region() == {"gra": 1, "rbx": 3}
    assert reasons(p)["rbx"].startswith("weight 1 of 2, minReplicas 2")


def test_max_replicas_caps_a_region_and_the_rest_goes_elsewhere() -> None:
    s = spec(4, regions=[{"name": "gra", "weight": 3, "maxReplicas": 1}, {"name": "rbx", "weight": 1}])
    p = plan(s, EU, Observed())
    assert p.replicas_by_region() == {"gra": 1, "rbx": 3}
    assert "maxReplicas 1" in reasons(p)["gra"]


def test_max_replicas_everywhere_below_the_total_is_reported() -> None:
    s = spec(5, regions=[{"name": "gra", "maxReplicas": 1}, {"name": "rbx", "maxReplicas": 2}])
    p = plan(s, EU, Observed())
    assert p.replicas_by_region() == {"gra": 1, "rbx": 2}
    assert p.unplaced == 2 and not p.satisfied
    assert "maxReplicas of the qualifying regions sum to 3: 2 of 5 have no region" in p.message


def test_weight_zero_is_standby_used_only_when_the_others_are_full() -> None:
    allow = [{"name": "gra", "weight": 1}, {"name": "rbx", "weight": 0}]
    fleet = [region("gra", gpus=[(H100, 4, 0)]), region("rbx", gpus=[(H100, 8, 0)])]
    assert plan(spec(3, regions=allow), fleet, Observed()).replicas_by_region() == {"gra": 3}
    p = plan(spec(6, regions=allow), fleet, Observed())
    assert p.replicas_by_region() == {"gra": 4, "rbx": 2}
    assert excluded(plan(spec(3, regions=allow), fleet, Observed())) == {
        "rbx": "weight 0 of 1: its share of 3 rounds to 0"
    }


def test_ties_break_by_name() -> None:
    assert split_by_weight(1, {"rbx": 1, "gra": 1}, {}) == {"gra": 1, "rbx": 0}
    assert plan(spec(1), [region("rbx"), region("gra")], Observed()).replicas_by_region() == {"gra": 1}


def test_running_replicas_that_satisfy_the_rules_are_not_reshuffled() -> None:
    # 3 over two equal regions: gra=2,rbx=1 from scratch, but rbx=2,gra=1 is as valid and is kept
    assert plan(spec(3), [region("gra"), region("rbx")], Observed()).replicas_by_region() == {"gra": 2, "rbx": 1}
    kept = plan(spec(3), [region("gra"), region("rbx")], Observed(replicas={"gra": 1, "rbx": 2}))
    assert kept.replicas_by_region() == {"gra": 1, "rbx": 2}
    assert kept.moves == ()


def test_scaling_keeps_the_existing_rounding() -> None:
    fleet = [region("gra"), region("rbx"), region("sbg")]
    p = plan(spec(4), fleet, Observed(replicas={"gra": 1, "rbx": 1, "sbg": 1}))
    assert p.replicas_by_region() == {"gra": 2, "rbx": 1, "sbg": 1}
    assert [(m.from_region, m.to_region, m.count, m.kind) for m in p.moves] == [("", "gra", 1, "Scale")]
    p = plan(spec(2), fleet, Observed(replicas={"gra": 1, "rbx": 1, "sbg": 1}))
    assert p.replicas_by_region() == {"gra": 1, "rbx": 1}
    assert [(m.from_region, m.to_region, m.kind) for m in p.moves] == [("sbg", "", "Scale")]


# --- capacity ------------------------------------------------------------------------------------------


def test_capacity_caps_a_region_and_spills_by_weight() -> None:
    fleet = [
        region("gra", gpus=[(H100, 16, 13)]),
        region("rbx", gpus=[(H100, 16, 0)]),
        region("sbg", gpus=[(H100, 16, 0)]),
    ]
    allow = [{"name": "gra", "weight": 4}, {"name": "rbx", "weight": 2}, {"name": "sbg", "weight": 1}]
    p = plan(spec(7, tp=2, regions=allow), fleet, Observed())
    assert p.replicas_by_region() == {"gra": 1, "rbx": 4, "sbg": 2}  # 3 spilled 2:1
    assert reasons(p)["gra"] == "weight 4 of 7; capped by capacity: 3 free GPUs / 2 per replica"
    assert "spill from gra: capped by capacity: 3 free GPUs / 2 per replica" in reasons(p)["rbx"]
    assert p.displaced == 3 and not p.satisfied
    assert "gra runs 1 of 4: capped by capacity: 3 free GPUs / 2 per replica" in p.message


def test_own_running_replicas_count_as_capacity() -> None:
    # gra is full, but 2 of the 4 requested GPUs are this model's own replicas: they stay
    fleet = [region("gra", gpus=[(H100, 4, 4)]), region("rbx", gpus=[(H100, 16, 0)])]
    p = plan(spec(2, tp=2, regions=[{"name": "gra"}]), fleet, Observed(replicas={"gra": 2}))
    assert p.replicas_by_region() == {"gra": 2}
    assert p.targets[0].capacity == 2
    assert p.moves == ()


def test_unknown_capacity_is_unbounded_and_says_so() -> None:
    p = plan(spec(2, regions=[{"name": "gra"}]), EU, Observed())
    assert reasons(p)["gra"] == "weight 1 of 1; capacity unknown (Region status not reported yet), treated as unbounded"
    assert p.targets[0].capacity is None


def test_mig_resources_are_not_tracked_so_capacity_is_unknown() -> None:
    s = spec(1, regions=[{"name": "gra"}])
    s.resources.gpu.resource_name = "nvidia.com/mig-3g.40gb"
    p = plan(s, [region("gra", gpus=[(H100, 8, 8)])], Observed())
    assert "capacity unknown (nvidia.com/mig-3g.40gb is not tracked)" in reasons(p)["gra"]


def test_not_enough_capacity_anywhere_waits_at_home() -> None:
    fleet = [region("gra", gpus=[(H100, 2, 0)]), region("rbx", gpus=[(H100, 2, 0)])]
    p = plan(spec(6), fleet, Observed())
    assert p.replicas_by_region() == {"gra": 3, "rbx": 3}
    assert p.unplaced == 2
    assert "2 replicas beyond known capacity; they wait for capacity" in p.message


def test_failover_disabled_keeps_replicas_over_capacity_and_reports_them() -> None:
    fleet = [region("gra", gpus=[(H100, 2, 0)]), region("rbx", gpus=[(H100, 16, 0)])]
    s = spec(4, failover={"enabled": False})
    p = plan(s, fleet, Observed())
    assert p.replicas_by_region() == {"gra": 2, "rbx": 2}
    p = plan(spec(6, failover={"enabled": False}), fleet, Observed())
    assert p.replicas_by_region() == {"gra": 3, "rbx": 3}
    assert p.unplaced == 1
    assert "over capacity: 1 of 3 do not fit (2 free GPUs / 1 per replica); failover disabled" in reasons(p)["gra"]


def test_plan_is_deterministic_whatever_the_region_order() -> None:
    fleet = [region("gra", gpus=[(H100, 3, 0)]), region("rbx", gpus=[(H100, 5, 1)]), region("sbg")]
    s = spec(9, regions=[{"name": "gra", "weight": 3}, {"name": "rbx"}, {"name": "sbg", "weight": 2}])
    assert plan(s, fleet, Observed()) == plan(s, list(reversed(fleet)), Observed())


def flapped(name: str, allocatable: int, not_ready: int, since: str, requested: int = 0) -> Region:
    r = region(name, gpus=[(H100, allocatable, requested)])
    pool = r.status.gpus[0]
    pool.capacity, pool.not_ready, pool.not_ready_since = allocatable + not_ready, not_ready, since
    return r


DOWN_AT = datetime(2026, 12, 3, 10, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("down_for", "home"), [(5, 4), (25, 2)])
def test_gpus_of_nodes_not_ready_count_until_the_failover_hold_has_passed(down_for: float, home: int) -> None:
    """A node that flaps is not a region lost: within unschedulableSeconds (20 s) its GPUs still
    count, so nothing spills; after it they do not, and the replicas beyond go elsewhere."""
    fleet = [flapped("gra", 0, 8, "2026-12-03T10:00:00Z", requested=2), region("rbx", gpus=[(H100, 16, 0)])]
    allow = [{"name": "gra", "weight": 1}, {"name": "rbx", "weight": 0}]
    s = spec(4, regions=allow, failover={"unschedulableSeconds": 20})
    p = plan(s, fleet, Observed(replicas={"gra": 2}, now=DOWN_AT + down_for))
    assert p.replicas_by_region().get("gra") == home
    assert sum(p.replicas_by_region().values()) == 4
    assert grace_ends_in(fleet, s, DOWN_AT + down_for) == (15 if down_for < 20 else None)
