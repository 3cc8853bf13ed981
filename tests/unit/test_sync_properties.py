"""Properties of the pure pass over random Worlds and random edits to them.

The edits are what happens to a regulated user: a Region loses a jurisdiction, a selector is
changed or made to overlap another, a node is relabelled, a namespace gets a residency label, an
allow list or exclusion list is edited. Whatever the planner makes of it, no Decision gives replicas
to a region that does not qualify, every live Deployment in such a region is evicted in the same
Decision, and ResidencyCompliant is True only when every bound pod sits on a node whose one Region
qualifies. "Qualifies" is computed here from scratch, not with the code under test.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.sync_worlds import NODE_LABEL, deployment, model, pod, region, world

from meridian.api.region import Region
from meridian.render.labels import REGION_LABEL
from meridian.sync import World, sync

pytestmark = pytest.mark.unit

NAMES = ["gra", "rbx", "waw", "eri", "bhs"]
TAGS = ["EU", "UK", "CA", "FR"]  # namespace labels
PROPERTY = settings(
    max_examples=int(os.environ.get("MERIDIAN_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class Drawn(NamedTuple):
    """A World and the node labels it was made from, for computing "qualifies" independently."""

    world: World
    nodes: Mapping[str, Mapping[str, str]]


@st.composite
def worlds(draw: st.DrawFn) -> Drawn:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=5, unique=True))
    regions = []
    for n in names:
        tags = draw(st.sampled_from([["EU"], ["EU", "FR"], ["EU", "UK"], ["UK"], ["CA"], []]))
        # a selector on its own label, or pointed at another region's nodes (overlap, or theft)
        target = draw(st.sampled_from([n, n, *NAMES]))
        regions.append(region(n, tags, {NODE_LABEL: target}))
    nodes = {f"{r}-{i}": {NODE_LABEL: r} for r in NAMES for i in range(draw(st.integers(0, 2)))}
    for node in draw(st.lists(st.sampled_from(sorted(nodes) or ["x"]), max_size=2)):  # relabelled nodes
        if node in nodes:
            nodes[node] = {NODE_LABEL: draw(st.sampled_from([*NAMES, "nowhere"]))}
    residency = draw(st.sampled_from([[], ["EU"], ["EU"], ["EU", "FR"], ["UK"]]))
    allow = draw(st.lists(st.sampled_from(names), max_size=2, unique=True))
    exclude = draw(st.lists(st.sampled_from([n for n in NAMES if n not in allow]), max_size=2, unique=True))
    md = model(
        replicas=draw(st.integers(0, 4)),
        placement={"residency": residency, "regions": [{"name": n} for n in allow], "excludeRegions": exclude},
    )
    live = draw(st.lists(st.sampled_from(NAMES), max_size=3, unique=True))
    deployments = [deployment(md, r, draw(st.integers(1, 3))) for r in live]
    pods = []
    for i in range(draw(st.integers(0, 5))):
        node = draw(st.sampled_from(["", *sorted(nodes), *sorted(nodes)]))
        pods.append(pod(f"p{i}", draw(st.sampled_from(NAMES)), node))
    tag = draw(st.sampled_from(["", "", *TAGS]))
    return Drawn(world(md, regions, nodes, deployments, pods, namespace_residency=tag), nodes)


def owners(regions: Sequence[Region], labels: Mapping[str, str]) -> list[Region]:
    return [r for r in regions if all(labels.get(k) == v for k, v in r.node_selector.items())]


def contested(w: World, nodes: Mapping[str, Mapping[str, str]]) -> set[str]:
    out: set[str] = set()
    for labels in nodes.values():
        found = owners(w.regions, labels)
        if len(found) > 1:
            out |= {r.name for r in found}
    return out


def required(w: World) -> set[str]:
    return set(w.model.spec.placement.residency) | ({w.namespace_residency} if w.namespace_residency else set())


def qualifies(w: World, nodes: Mapping[str, Mapping[str, str]], name: str) -> bool:
    p = w.model.spec.placement
    if w.namespace_residency and w.namespace_residency not in p.residency:
        return False
    r = next((r for r in w.regions if r.name == name), None)
    if r is None:
        return not required(w)  # no Region object: only a model with no residency may stay
    allowed = {x.name for x in p.regions}
    return (
        required(w) <= set(r.spec.jurisdictions)
        and name not in contested(w, nodes)
        and name not in p.exclude_regions
        and (not allowed or name in allowed)
    )


def region_of(obj: Mapping[str, Any]) -> str:
    return str(obj["metadata"]["labels"][REGION_LABEL])


@PROPERTY
@given(worlds())
def test_no_decision_gives_replicas_to_a_region_that_does_not_qualify(case: Drawn) -> None:
    w, nodes = case
    d = sync(w)
    for obj in d.applies:
        if obj["kind"] == "Deployment" and obj["spec"]["replicas"] > 0:
            assert qualifies(w, nodes, region_of(obj)), (region_of(obj), obj["spec"]["replicas"])


@PROPERTY
@given(worlds())
def test_every_live_deployment_in_a_region_that_does_not_qualify_is_evicted_now(case: Drawn) -> None:
    w, nodes = case
    d = sync(w)
    evicted = {e.name for e in d.evictions if e.kind == "Deployment"}
    for (kind, name), obj in w.owned.items():
        if kind == "Deployment" and not qualifies(w, nodes, region_of(obj)):
            assert name in evicted, region_of(obj)
    assert not {o["metadata"]["name"] for o in d.applies} & evicted  # never re-applied in the same pass


@PROPERTY
@given(worlds())
def test_residency_compliant_only_when_every_bound_pod_is_on_a_qualifying_regions_node(case: Drawn) -> None:
    w, nodes = case
    d = sync(w)
    status = d.status if d.status is not None else w.model.status.wire()
    compliant = next(c for c in status["conditions"] if c["type"] == "ResidencyCompliant")["status"] == "True"
    need = required(w)
    ok = True
    for p in w.pods:
        node = p["spec"].get("nodeName")
        if not node or not need:
            continue
        found = owners(w.regions, nodes.get(node, {}))
        ok &= len(found) == 1 and need <= set(found[0].spec.jurisdictions)
    assert compliant == ok
    if not ok:  # and every violating pod is deleted in the same Decision
        assert any(e.kind == "Pod" for e in d.evictions)
