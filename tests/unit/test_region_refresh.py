"""refresh_regions: Region status is written only when it changes, even before the cache has seen the
write, and a Region that turns untrustworthy gets one Warning Event, not one per refresh."""

from __future__ import annotations

import copy
from typing import Any, cast

import pytest

from meridian.api.region import Region
from meridian.reconcile.kube import Kube
from meridian.reconcile.regions import COUNTS_EVERY, RegionMemory, refresh_regions

pytestmark = pytest.mark.unit


class FakeKube:
    """The two calls refresh_regions makes (status writes, Events), over in-memory Regions."""

    def __init__(self, regions: dict[str, dict[str, Any]], nodes: list[dict[str, Any]]) -> None:
        self.regions = regions
        self.nodes = nodes
        self.events: list[dict[str, Any]] = []
        self.status_writes = 0

    async def refresh(self, memory: RegionMemory, requested: dict[str, int] | None = None, clock: float = 0.0) -> int:
        """One refresh over a cache that holds the Regions as they are now; how many it wrote."""
        regions = [Region.model_validate(copy.deepcopy(r)) for r in self.regions.values()]
        return (
            await refresh_regions(cast(Kube, self), regions, self.nodes, requested or {}, memory, clock=clock)
        ).written

    async def apply_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        self.status_writes += 1
        self.regions[name]["status"] = copy.deepcopy(status)
        meta = self.regions[name]["metadata"]
        meta["resourceVersion"] = str(int(meta.get("resourceVersion", "1")) + 1)
        return self.regions[name]

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.events.append(obj)
        return obj


def region(name: str, selector: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"country": "FR"} | ({"nodeSelector": selector} if selector else {})
    return {"metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": "1"}, "spec": spec}


def node(name: str, **labels: str) -> dict[str, Any]:
    ready = {"conditions": [{"type": "Ready", "status": "True"}]}
    return {"metadata": {"name": name, "labels": labels}, "status": ready}


def reasons(kube: FakeKube) -> list[tuple[str, str, str]]:
    return sorted((e["involvedObject"]["name"], e["reason"], e["type"]) for e in kube.events)


async def test_a_shared_node_warns_both_regions_once() -> None:
    nodes = [node("n1", **{"node-restriction.kubernetes.io/region": "gra", "pool": "h100"}), node("n2", pool="h100")]
    kube = FakeKube({"gra": region("gra"), "h100": region("h100", {"pool": "h100"})}, nodes)

    memory = RegionMemory()
    stale = [Region.model_validate(copy.deepcopy(r)) for r in kube.regions.values()]
    assert await kube.refresh(memory) == 2
    assert reasons(kube) == [
        ("gra", "NodeClaimedByTwoRegions", "Warning"),
        ("h100", "KubeletSettableLabels", "Warning"),  # pool is a label any kubelet may set
        ("h100", "NodeClaimedByTwoRegions", "Warning"),
    ]
    gra = next(e for e in kube.events if e["involvedObject"]["name"] == "gra")
    assert gra["involvedObject"] == {
        "apiVersion": "serving.meridian.dev/v1alpha1",
        "kind": "Region",
        "name": "gra",
        "uid": "uid-gra",
    }
    assert "node n1 " in gra["message"] and "Region h100" in gra["message"]
    ready = {c["type"]: c for c in kube.regions["gra"]["status"]["conditions"]}["Ready"]
    assert ready["reason"] == "NodeClaimedByTwoRegions" and ready["lastTransitionTime"]

    # nothing changed: nothing written, nothing posted again, even if the cache still holds the
    # Regions as they were before our write
    assert (await refresh_regions(cast(Kube, kube), stale, kube.nodes, {}, memory)).written == 0
    assert await kube.refresh(memory) == 0
    assert len(kube.events) == 3

    # the overlap is fixed: Ready again, kept timestamps where nothing flipped, still no new Event
    kube.regions["h100"]["spec"]["nodeSelector"] = {"pool": "h100", "node-restriction.kubernetes.io/region": "h100"}
    assert await kube.refresh(memory) == 2
    assert len(kube.events) == 3
    conds = {c["type"]: c for c in kube.regions["gra"]["status"]["conditions"]}
    assert (conds["Ready"]["status"], conds["Ready"]["reason"]) == ("True", "NodesReady")
    assert conds["SelectorProtected"]["status"] == "True"

    # and when it comes back, it is news again
    kube.regions["h100"]["spec"]["nodeSelector"] = {"pool": "h100"}
    await kube.refresh(memory)
    assert [e["reason"] for e in kube.events[3:]].count("NodeClaimedByTwoRegions") == 2


async def test_a_lost_event_does_not_stop_the_status_write() -> None:
    class NoEvents(FakeKube):
        async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
            raise RuntimeError("events quota exceeded")

    kube = NoEvents({"x": region("x", {"topology.kubernetes.io/region": "x"})}, [])
    assert await kube.refresh(RegionMemory()) == 1
    conds = {c["type"]: c for c in kube.regions["x"]["status"]["conditions"]}
    assert (conds["SelectorProtected"]["status"], conds["SelectorProtected"]["reason"]) == (
        "False",
        "KubeletSettableLabels",
    )


async def test_gpus_taken_are_planned_at_once_and_written_at_most_every_counts_every_seconds() -> None:
    """A fleet converging places a pod every few seconds in each Region: the planner must see each
    one at once, while the Region's status is written for it at most every COUNTS_EVERY seconds;
    a node lost is written at once."""
    gpu = {"capacity": {"nvidia.com/gpu": "8"}, "allocatable": {"nvidia.com/gpu": "8"}}
    label = "node-restriction.kubernetes.io/region"
    nodes = [{**node(f"n{i}", **{label: "gra"}), "status": {**node("x")["status"], **gpu}} for i in range(2)]
    kube = FakeKube({"gra": region("gra")}, nodes)
    memory = RegionMemory()
    regions = [Region.model_validate(r) for r in kube.regions.values()]

    assert await kube.refresh(memory, clock=100.0) == 1
    assert kube.regions["gra"]["status"]["freeGpus"] == 16

    refresh = await refresh_regions(cast(Kube, kube), regions, nodes, {"n0": 1}, memory, clock=101.0)
    assert refresh.written == 0 and refresh.due_in == pytest.approx(COUNTS_EVERY - 1.0)
    assert memory.planning(regions)[0].status.free_gpus == 15, "the planner sees the GPU taken at once"
    assert kube.regions["gra"]["status"]["freeGpus"] == 16

    assert await kube.refresh(memory, {"n0": 2}, clock=100.0 + COUNTS_EVERY) == 1
    assert kube.regions["gra"]["status"]["freeGpus"] == 14

    kube.nodes = nodes[:1]  # a node gone is news: written at once, however recent the last write
    assert await kube.refresh(memory, {"n0": 2}, clock=101.0 + COUNTS_EVERY) == 1
    assert (kube.regions["gra"]["status"]["nodes"], kube.regions["gra"]["status"]["freeGpus"]) == (1, 6)


async def test_a_crd_older_than_the_operator_does_not_make_it_write_forever() -> None:
    """Helm leaves CRDs as they were on upgrade: the API server then prunes status fields the old
    schema lacks, and the stored copy never matches what the operator computes."""

    class OldCrd(FakeKube):
        async def apply_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
            pruned = copy.deepcopy(status)
            for pool in pruned.get("gpus", []):
                pool.pop("shapes", None)
            return await super().apply_status(kind, namespace, name, pruned)

    gpu_node = node("n1", **{"node-restriction.kubernetes.io/region": "gra"})
    gpu_node["status"] |= {
        "capacity": {"nvidia.com/gpu": "8"},
        "allocatable": {"nvidia.com/gpu": "8", "cpu": "192", "memory": "2Ti"},
    }
    kube = OldCrd({"gra": region("gra")}, [gpu_node])
    memory = RegionMemory()
    assert await kube.refresh(memory) == 1
    assert "shapes" not in kube.regions["gra"]["status"]["gpus"][0]
    assert await kube.refresh(memory, clock=100.0) == 0  # the cache now holds the pruned copy of our write
    kube.nodes.append(node("n2", **{"node-restriction.kubernetes.io/region": "gra"}))
    assert await kube.refresh(memory, clock=200.0) == 1  # a real change is still written
