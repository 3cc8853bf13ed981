"""A region's nodes flapping NotReady and back every few seconds, for two minutes.

What a flaky top-of-rack switch looks like to the control plane. The model lives in lim (weight 1)
with sbg as its fallback (weight 0) and a failover hold of 20 s; lim's L4 nodes go NotReady for
FLAP_SECONDS and Ready again for as long, over and over, and the model is scaled from 2 replicas to
4 while they do (a new pod that meets NotReady nodes waits Pending). No NotReady spell outlasts the
hold, so nothing may move: every pod the watch ever sees is on a node in lim, none in sbg, let alone
outside the EU; afterwards the model is Ready with its 4 replicas in lim.

A node goes NotReady the way a lost kubelet looks: kwok stops managing it (its annotation removed,
so nothing renews its status) and its Ready condition turns False; it comes back when the annotation
does (kwok's node-initialize stage makes it Ready again).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client, watch
from tests.e2e.test_placement_eu import EU, spec
from tests.fixtures_eu import EuCluster
from tests.fixtures_operator import Mdeps

from meridian.sim import kwok

pytestmark = pytest.mark.e2e
FLAP_SECONDS = 4.0
FLAPPING_SECONDS = 120.0
HOLD_SECONDS = 20
L4 = {"gpu": {"products": ["L4"]}}


class PodWatch(threading.Thread):
    """Every (pod, node) the API server reports for the namespace, from one watch, until stopped."""

    def __init__(self, core: client.CoreV1Api, ns: str) -> None:
        super().__init__(daemon=True)
        self.core, self.ns = core, ns
        self.placed: dict[str, str] = {}  # pod name → node it was bound to
        self.stopping = threading.Event()

    def run(self) -> None:
        version = ""
        while not self.stopping.is_set():
            w = watch.Watch()
            for event in w.stream(self.core.list_namespaced_pod, self.ns, resource_version=version, timeout_seconds=5):
                pod = event["object"]
                version = pod.metadata.resource_version
                if pod.spec.node_name:
                    self.placed[pod.metadata.name] = pod.spec.node_name


def node_ready(core: client.CoreV1Api, name: str, ready: bool) -> None:
    if ready:
        core.patch_node(name, {"metadata": {"annotations": {kwok.NODE_ANNOTATION: kwok.NODE_ANNOTATION_VALUE}}})
        return
    core.patch_node(name, {"metadata": {"annotations": {kwok.NODE_ANNOTATION: None}}})
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    cond = {
        "type": "Ready",
        "status": "False",
        "reason": "KubeletNotReady",
        "message": "node flapping (test)",
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }
    core.patch_node_status(name, {"status": {"conditions": [cond]}})


def all_ready(core: client.CoreV1Api, names: list[str]) -> bool:
    def ready(node: Any) -> bool:
        return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])

    return all(ready(core.read_node(n)) for n in names)


def test_flapping_nodes_move_nothing_and_nothing_leaves_the_eu(eu: EuCluster, eu_mdeps: Mdeps) -> None:
    core = client.CoreV1Api(eu.api)
    region_of = {
        n["metadata"]["name"]: n["metadata"]["labels"]["topology.kubernetes.io/region"]
        for n in eu.node_manifests("lim") + eu.node_manifests("sbg")
    }
    flappers = [n["metadata"]["name"] for n in eu.node_manifests("lim", "L4")]
    failover = {"unschedulableSeconds": HOLD_SECONDS}
    placement = {
        "residency": ["EU"],
        "regions": [{"name": "lim", "weight": 1}, {"name": "sbg", "weight": 0}],
        "failover": failover,
    }
    eu_mdeps.create("flap", spec(replicas=2, resources=L4, placement=placement))
    eu_mdeps.wait_condition("flap", "Ready", timeout=120)
    pods = PodWatch(core, eu_mdeps.ns)
    pods.start()
    try:
        t0 = time.monotonic()
        scaled = False
        while time.monotonic() - t0 < FLAPPING_SECONDS:
            for name in flappers:
                node_ready(core, name, False)
            if not scaled and time.monotonic() - t0 > FLAPPING_SECONDS / 3:
                eu_mdeps.patch("flap", {"spec": {"replicas": 4}})
                scaled = True
            time.sleep(FLAP_SECONDS)
            for name in flappers:
                node_ready(core, name, True)
            time.sleep(FLAP_SECONDS)
        deadline = time.monotonic() + 30
        while not all_ready(core, flappers):
            assert time.monotonic() < deadline, "kwok never made lim's nodes Ready again"
            time.sleep(0.5)
        eu_mdeps.wait_condition("flap", "Ready", timeout=90)
    finally:
        for name in flappers:
            node_ready(core, name, True)
        pods.stopping.set()
        pods.join(10)
    where = {pod: region_of.get(node, node) for pod, node in pods.placed.items()}
    assert set(where.values()) <= EU, where
    assert set(where.values()) == {"lim"}, f"replicas moved while lim's nodes flapped: {where}"
    assert len(where) == 4, f"pods were replaced, not kept: {where}"
