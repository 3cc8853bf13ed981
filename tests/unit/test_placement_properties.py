"""Property-based tests of the planner over random fleets, specs, capacity losses and cordons.

A tiny world simulator stands in for the cluster: regions with GPU pools used by other workloads,
this model's pods scheduled into free GPUs (the rest unschedulable), and Region status derived from
both. Feeding a plan back through it is what the reconcile loop does, so "a second pass changes
nothing" is checked on realistic input: the model's own pods are in `requested`, as in a cluster.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from meridian.api.modeldeployment import ModelDeploymentSpec
from meridian.api.region import Region
from meridian.placement.plan import Hold, Observed, Plan, plan

pytestmark = pytest.mark.unit

NAMES = ["ams", "bhs", "eri", "fra", "gra", "lim", "par", "rbx", "sbg", "waw", "zrh"]
TAGS = ["EU", "EEA", "FR", "DE", "UK", "CH", "CA"]
PRODUCTS = ["H100", "A100", "L40S", "L4"]
MEMORY = [24000, 48000, 81920, 143771]
GONE = "gone"  # a region with running replicas whose Region object was deleted

PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("MERIDIAN_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# --- the world -------------------------------------------------------------------------------------


@dataclass
class Pool:
    product: str
    memory: int
    allocatable: int
    other: int  # GPUs requested by other workloads


@dataclass
class Site:
    name: str
    jurisdictions: list[str]
    cordoned: bool = False
    pools: list[Pool] | None = None  # None: Region status never reported


@dataclass
class World:
    sites: dict[str, Site]
    replicas: dict[str, int] = field(default_factory=dict)
    unschedulable: dict[str, int] = field(default_factory=dict)
    since: dict[str, float] = field(default_factory=dict)
    ready: dict[str, int] | None = None
    held: Mapping[str, Hold] = field(default_factory=dict)
    now: float = 1000.0


def matching(site: Site, spec: ModelDeploymentSpec) -> list[Pool]:
    gpu = spec.resources.gpu
    return [
        p
        for p in site.pools or []
        if (not gpu.products or p.product in gpu.products) and p.memory >= gpu.min_memory_mi_b
    ]


def room(world: World, spec: ModelDeploymentSpec, region: str) -> int | None:
    """Replicas of this model the region can schedule in total (None: unbounded)."""
    site = world.sites.get(region)
    if site is None or site.pools is None:
        return None
    free = sum(max(0, p.allocatable - p.other) for p in matching(site, spec))
    return free // spec.gpus_per_replica


def scheduled(world: World, region: str) -> int:
    return world.replicas.get(region, 0) - world.unschedulable.get(region, 0)


def regions(world: World, spec: ModelDeploymentSpec) -> list[Region]:
    out = []
    for site in world.sites.values():
        doc: dict[str, Any] = {
            "metadata": {"name": site.name},
            "spec": {"country": "FR", "jurisdictions": site.jurisdictions, "cordoned": site.cordoned},
        }
        if site.pools is not None:
            own = scheduled(world, site.name) * spec.gpus_per_replica
            match = {id(p) for p in matching(site, spec)}
            gpus = []
            for p in site.pools:
                take = min(own, max(0, p.allocatable - p.other)) if id(p) in match else 0
                own -= take
                gpus.append(
                    {
                        "product": p.product,
                        "memoryMiB": p.memory,
                        "capacity": p.allocatable,
                        "allocatable": p.allocatable,
                        "requested": p.other + take,
                    }
                )
            assert own == 0, "the world scheduled more than fits"
            doc["status"] = {
                "nodes": len(site.pools),
                "gpus": gpus,
                "conditions": [{"type": "Ready", "status": "True" if site.pools else "False"}],
            }
        out.append(Region.model_validate(doc))
    return out


def observed(world: World) -> Observed:
    return Observed(
        replicas=dict(world.replicas),
        unschedulable={r: n for r, n in world.unschedulable.items() if n},
        unschedulable_since=dict(world.since),
        now=world.now,
        ready=None if world.ready is None else dict(world.ready),
        held=dict(world.held),
    )


def effective_ready(world: World) -> dict[str, int]:
    if world.ready is None:
        return {r: scheduled(world, r) for r in world.replicas}
    return {r: min(world.ready.get(r, 0), n) for r, n in world.replicas.items()}


def settle(world: World, spec: ModelDeploymentSpec, p: Plan, *, ready_all: bool, dt: float) -> World:
    """Apply a plan: Deployments scaled, the scheduler places what fits, optionally pods become ready."""
    targets = p.replicas_by_region()
    replicas: dict[str, int] = {}
    unsched: dict[str, int] = {}
    since: dict[str, float] = {}
    ready = effective_ready(world)
    for r in sorted(set(world.replicas) | set(targets)):
        cur, want = world.replicas.get(r, 0), targets.get(r, 0)
        u = world.unschedulable.get(r, 0)
        s = cur - u
        if want < cur:  # the ReplicaSet controller deletes unscheduled pods first
            cut = cur - want
            gone = min(u, cut)
            u -= gone
            s -= cut - gone
            ready[r] = min(ready.get(r, 0), s)
        elif want > cur:
            fits = room(world, spec, r)
            new = want - cur if fits is None else max(0, min(want - cur, fits - s))
            if u == 0 and want - cur - new > 0:
                since[r] = world.now
            s += new
            u += want - cur - new
        if u and r not in since:
            since[r] = world.since.get(r, world.now)
        if want:
            replicas[r] = want
            unsched[r] = u
    new_ready = {r: replicas[r] - unsched[r] for r in replicas} if ready_all else ready
    return dataclasses.replace(
        world,
        replicas=replicas,
        unschedulable={r: n for r, n in unsched.items() if n},
        since=since,
        ready={r: min(new_ready.get(r, 0), n - unsched.get(r, 0)) for r, n in replicas.items()},
        held=dict(p.held),
        now=world.now + dt,
    )


# --- an oracle for qualification, written independently of placement/qualify.py ---------------------


def qualifies(spec: ModelDeploymentSpec, site: Site) -> bool:
    pl = spec.placement
    if not set(pl.residency) <= set(site.jurisdictions):
        return False
    if pl.regions and site.name not in {p.name for p in pl.regions}:
        return False
    if site.name in pl.exclude_regions or site.cordoned:
        return False
    return site.pools is None or any(p.allocatable > 0 for p in matching(site, spec))


def must_be_empty(spec: ModelDeploymentSpec, world: World, region: str) -> bool:
    """Residency and excludeRegions: never a replica, not even one kept while draining."""
    site = world.sites.get(region)
    if site is None:
        return bool(spec.placement.residency)
    return not set(spec.placement.residency) <= set(site.jurisdictions) or region in spec.placement.exclude_regions


def room_for(spec: ModelDeploymentSpec, world: World) -> float:
    """Replicas the qualifying regions can run together, within capacity and maxReplicas."""
    prefs = {x.name: x for x in spec.placement.regions}
    total = 0.0
    for n, site in world.sites.items():
        if not qualifies(spec, site):
            continue
        fits = room(world, spec, n)
        most = prefs[n].max_replicas if n in prefs else None
        bounds = [b for b in (fits, most) if b is not None]
        total += min(bounds) if bounds else float("inf")
    return total


# --- strategies ------------------------------------------------------------------------------------


@st.composite
def sites(draw: st.DrawFn) -> dict[str, Site]:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=7, unique=True))
    out = {}
    for n in sorted(names):
        pools = None
        if draw(st.integers(0, 3)):
            pools = []
            for _ in range(draw(st.integers(0, 3))):
                alloc = draw(st.integers(0, 32))
                pools.append(
                    Pool(
                        draw(st.sampled_from(PRODUCTS)),
                        draw(st.sampled_from(MEMORY)),
                        alloc,
                        draw(st.integers(0, alloc)),
                    )
                )
        tags = draw(st.lists(st.sampled_from(TAGS), max_size=3, unique=True))
        if draw(st.booleans()) and "EU" not in tags:
            tags.append("EU")
        out[n] = Site(
            n,
            tags,
            cordoned=draw(st.integers(0, 5)) == 0,
            pools=pools,
        )
    return out


@st.composite
def specs(draw: st.DrawFn, fleet: dict[str, Site], *, unbounded_max: bool = False) -> ModelDeploymentSpec:
    """Specs biased toward the fleet (its tags and products), so most of them can be placed somewhere."""
    names = sorted(fleet)
    tags = sorted({t for s in fleet.values() for t in s.jurisdictions}) or TAGS[:1]
    products = sorted({p.product for s in fleet.values() for p in s.pools or []}) or PRODUCTS
    allowed: list[dict[str, Any]] = []
    if draw(st.booleans()):
        for n in draw(st.lists(st.sampled_from(names), min_size=1, unique=True)):
            pref: dict[str, Any] = {
                "name": n,
                "weight": draw(st.integers(0, 4)),
                "minReplicas": draw(st.integers(0, 3)),
            }
            if not unbounded_max and draw(st.booleans()):
                pref["maxReplicas"] = draw(st.integers(0, 6))
            allowed.append(pref)
    allowed_names = {p["name"] for p in allowed}
    others = [n for n in names if n not in allowed_names] or ["none"]
    exclude = draw(st.lists(st.sampled_from(others), max_size=2, unique=True))
    tp, pp = draw(st.integers(1, 4)), draw(st.integers(1, 2))
    return ModelDeploymentSpec.model_validate(
        {
            "model": {"format": "onnx", "storageUri": "s3://models/m"},
            "runtime": {"tensorParallelSize": tp, "pipelineParallelSize": pp},
            "resources": {
                "gpu": {
                    "products": draw(st.lists(st.sampled_from(products + PRODUCTS[:1]), max_size=2, unique=True)),
                    "minMemoryMiB": draw(st.sampled_from([0, 0, 0, 40000, 80000])),
                }
            },
            "replicas": draw(st.integers(0, 12)),
            "placement": {
                "residency": draw(
                    st.lists(st.sampled_from([*tags, "CH"]), max_size=draw(st.sampled_from([0, 1, 1, 2])), unique=True)
                ),
                "regions": allowed,
                "excludeRegions": [e for e in exclude if e != "none"],
                "failover": {
                    "enabled": draw(st.booleans()),
                    "unschedulableSeconds": draw(st.sampled_from([0, 60, 120, 300])),
                },
            },
            "rollout": {"maxSurge": draw(st.integers(0, 3))},
        }
    )


@st.composite
def worlds(draw: st.DrawFn, spec: ModelDeploymentSpec, fleet: dict[str, Site]) -> World:
    """Replicas already running (some unschedulable, some not ready) in a consistent world."""
    world = World(dict(fleet))
    for r in draw(st.lists(st.sampled_from([*sorted(fleet), GONE]), max_size=4, unique=True)):
        n = draw(st.integers(1, 6))
        u = draw(st.integers(0, n))
        fits = room(world, spec, r)
        if fits is not None:
            u = max(u, n - fits)
        world.replicas[r] = n
        if u:
            world.unschedulable[r] = u
            world.since[r] = world.now - draw(st.sampled_from([0, 30, 130, 400]))
    if draw(st.booleans()):
        world.ready = {r: draw(st.integers(0, scheduled(world, r))) for r in world.replicas}
    return world


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[ModelDeploymentSpec, World]:
    fleet = draw(sites())
    spec = draw(specs(fleet))
    return spec, draw(worlds(spec, fleet))


# --- the properties --------------------------------------------------------------------------------


def check_safe(spec: ModelDeploymentSpec, world: World, p: Plan) -> None:
    """No replica where residency or excludeRegions forbid it; nothing new where it may only drain."""
    qualifying = {n for n, s in world.sites.items() if qualifies(spec, s)}
    for t in p.targets:
        assert t.replicas > 0
        assert not must_be_empty(spec, world, t.region), (t, spec.placement)
        if t.region not in qualifying:
            assert t.replicas <= world.replicas.get(t.region, 0), f"{t.region} grew while not qualifying"
    for m in p.moves:
        assert m.count > 0
        assert m.to_region == "" or m.to_region in qualifying, f"move into non-qualifying {m.to_region}"


@given(scenarios())
@PROPERTY_SETTINGS
def test_never_places_outside_residency_excludes_or_cordons(scenario: tuple[ModelDeploymentSpec, World]) -> None:
    spec, world = scenario
    p = plan(spec, regions(world, spec), observed(world))
    check_safe(spec, world, p)
    qualifying = [n for n, s in world.sites.items() if qualifies(spec, s)]
    unknown = {x.name for x in spec.placement.regions} - set(world.sites)
    assert p.stalled == (not qualifying or bool(unknown))
    if p.stalled:
        assert p.targets == ()


@given(scenarios())
@PROPERTY_SETTINGS
def test_total_is_met_when_capacity_allows(scenario: tuple[ModelDeploymentSpec, World]) -> None:
    spec, world = scenario
    p = plan(spec, regions(world, spec), observed(world))
    assume(not p.stalled)
    qualifying = [n for n, s in world.sites.items() if qualifies(spec, s)]
    prefs = {x.name: x for x in spec.placement.regions}
    most = [prefs[n].max_replicas if n in prefs else None for n in qualifying]
    if None in most or sum(m or 0 for m in most) >= spec.replicas:
        # while draining surge-first, part of the total still runs in the region it is leaving
        assert sum(t.replicas for t in p.targets) >= spec.replicas
    before = sum(world.replicas.values())
    assert sum(t.replicas for t in p.targets) <= max(before, spec.replicas + max(1, spec.rollout.max_surge))

    # from scratch, with failover on and enough free GPUs, every replica fits where it is placed
    fresh = plan(spec, regions(World(world.sites), spec), Observed(now=world.now))
    if spec.placement.failover.enabled and room_for(spec, world) >= spec.replicas:
        assert fresh.unplaced == 0
        assert sum(t.replicas for t in fresh.targets) == spec.replicas
        for t in fresh.targets:
            fits = room(world, spec, t.region)
            assert fits is None or t.replicas <= fits, t


@given(st.data())
@PROPERTY_SETTINGS
def test_weights_and_minimums_hold_with_unbounded_capacity(data: st.DataObject) -> None:
    """With unbounded capacity and no maxReplicas, each region gets its minimum plus its weighted share of
    the rest, exactly up to rounding: |count - (min + (total - sum(min)) * w / sum(w))| < 1."""
    fleet = {n: dataclasses.replace(s, pools=None, cordoned=False) for n, s in data.draw(sites()).items()}
    spec = data.draw(specs(fleet, unbounded_max=True))
    qualifying = sorted(n for n, s in fleet.items() if qualifies(spec, s))
    assume(qualifying)
    assume(not ({x.name for x in spec.placement.regions} - set(fleet)))
    prefs = {x.name: x for x in spec.placement.regions}
    weight = {n: prefs[n].weight if n in prefs else 1 for n in qualifying}
    minimum = {n: prefs[n].min_replicas if n in prefs else 0 for n in qualifying}
    assume(sum(minimum.values()) <= spec.replicas)
    if not any(weight.values()):
        weight = dict.fromkeys(qualifying, 1)
    w_sum = sum(weight.values())
    rest = spec.replicas - sum(minimum.values())

    got = plan(spec, regions(World(fleet), spec), Observed()).replicas_by_region()
    assert sum(got.values()) == spec.replicas
    for n in qualifying:
        exact = minimum[n] + Fraction(rest * weight[n], w_sum) if w_sum else Fraction(minimum[n])
        assert got.get(n, 0) >= minimum[n]
        assert abs(got.get(n, 0) - exact) < 1, (n, got, exact)


@given(scenarios())
@PROPERTY_SETTINGS
def test_second_pass_on_own_output_changes_nothing(scenario: tuple[ModelDeploymentSpec, World]) -> None:
    spec, world = scenario
    first = plan(spec, regions(world, spec), observed(world))
    assume(not first.stalled)
    # same readiness as before (nothing new became ready), same clock: only the plan is fed back
    world = dataclasses.replace(world, ready=effective_ready(world))
    after = settle(world, spec, first, ready_all=False, dt=0)
    fresh_waits = any(after.since.get(r) == world.now and r not in world.since for r in after.unschedulable)
    assume(not (fresh_waits and spec.placement.failover.enabled and spec.placement.failover.unschedulable_seconds == 0))
    second = plan(spec, regions(after, spec), observed(after))
    # reasons may now mention what the scheduler did (pods unschedulable); the placement itself is kept
    assert second.replicas_by_region() == first.replicas_by_region()
    assert second.held == first.held
    assert second.moves == ()


@given(scenarios())
@PROPERTY_SETTINGS
def test_planning_is_deterministic(scenario: tuple[ModelDeploymentSpec, World]) -> None:
    spec, world = scenario
    fleet = regions(world, spec)
    assert plan(spec, fleet, observed(world)) == plan(spec, list(reversed(fleet)), observed(world))


# --- disruptions: capacity losses, cordons, unschedulable pods, over several passes ---------------------


def ready_total(world: World, plan_targets: Mapping[str, int], evicted: set[str]) -> tuple[int, int]:
    """Ready replicas now (outside evicted regions), and those that stay ready once the plan is applied."""
    ready = effective_ready(world)
    now = sum(n for r, n in ready.items() if r not in evicted)
    kept = sum(min(n, plan_targets.get(r, 0)) for r, n in ready.items())
    return now, kept


@given(st.data())
@PROPERTY_SETTINGS
def test_disruptions_keep_ready_capacity_and_converge(data: st.DataObject) -> None:
    fleet = data.draw(sites())
    spec = data.draw(specs(fleet))
    world = World(dict(fleet))
    p = plan(spec, regions(world, spec), observed(world))
    assume(not p.stalled)
    world = settle(world, spec, p, ready_all=True, dt=60)

    victim = data.draw(st.sampled_from(sorted(fleet)))
    kind = data.draw(st.sampled_from(["lose-capacity", "cordon", "stuck-pods"]))
    site = world.sites[victim]
    if kind == "lose-capacity":
        world.sites[victim] = dataclasses.replace(site, pools=[])
        lost = scheduled(world, victim)
        if lost:  # its pods die with the nodes and come back unschedulable
            world.unschedulable[victim] = world.replicas[victim]
            world.since[victim] = world.now
            assert world.ready is not None
            world.ready[victim] = 0
    elif kind == "cordon":
        world.sites[victim] = dataclasses.replace(site, cordoned=True)
    elif world.replicas.get(victim):  # pods the scheduler cannot place although status says there is room
        world.unschedulable[victim] = world.replicas[victim]
        world.since[victim] = world.now - 10_000
        assert world.ready is not None
        world.ready[victim] = 0

    previous: list[tuple[str, ...]] = []
    for _ in range(40):
        p = plan(spec, regions(world, spec), observed(world))
        if p.stalled:
            return
        check_safe(spec, world, p)
        evicted = {r for r in world.replicas if must_be_empty(spec, world, r)}
        now, kept = ready_total(world, p.replicas_by_region(), evicted)
        assert kept >= min(now, spec.replicas), "a plan step dropped ready capacity"
        signature = tuple(f"{t.region}={t.replicas}" for t in p.targets)
        if previous and previous[-1] == signature and not p.moves:
            break
        previous.append(signature)
        world = settle(world, spec, p, ready_all=True, dt=60)
    else:
        pytest.fail(f"no convergence after 40 passes: {previous[-4:]}")
    # with failover the replacements go where they fit, become ready, and the drain completes; without
    # it they may wait where the weights put them, and the cordoned region keeps serving meanwhile
    drainable = spec.placement.failover.enabled and room_for(spec, world) >= spec.replicas
    if kind == "cordon" and not qualifies(spec, world.sites[victim]) and drainable:
        assert victim not in p.replicas_by_region(), "a cordoned region was not drained"
