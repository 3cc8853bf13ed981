"""Failover time on the simulated EU fleet: from a region lost to replicas Ready elsewhere.

Run: python bench/failover.py [--rounds 3]

Two ways to lose lim, each measured for a plain Deployment (the floor) and for Meridian:
  fast (nodes gone): lim's L4 nodes are deleted;
  GPUs taken (nodes stay): another tenant's higher-priority pods take every L4 GPU in lim,
       preempting the 2 replicas there, which come back Pending, Unschedulable (Insufficient
       nvidia.com/gpu). Meridian's Region capacity (kept from pod events) shows lim full at once,
       so it moves without waiting out the failover hold (`unschedulableSeconds`, 10 s); the hold
       is for pods that cannot schedule while capacity looks free.
  floor:    a plain Deployment pinned to lim with 2 pods, re-pinned to sbg the instant lim is lost:
            what the control plane alone needs to move pods when the decision takes no time;
  meridian: a ModelDeployment (residency EU, regions lim weight 1, sbg weight 0, failover after 10 s),
            timed until its 2 replicas are Ready in sbg; after the fast loss the nodes come back and
            the return to lim is timed too.
One operator runs throughout; the floor and Meridian alternate round by round. Prints one JSON line
per phase (medians over the rounds) and the ratios meridian/floor.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import client

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.fixtures_operator import start_operator, stop_operator  # noqa: E402

from meridian.sim import binaries, cluster, controlplane  # noqa: E402
from meridian.sim import fleet as fleetmod  # noqa: E402


def lim_l4(fleet: fleetmod.Fleet) -> list[dict[str, Any]]:
    return [
        n
        for n in fleetmod.node_manifests(fleet)
        if n["metadata"]["labels"]["topology.kubernetes.io/region"] == "lim"
        and n["metadata"]["labels"].get("nvidia.com/gpu.product") == "L4"
    ]


def until(probe: Any, timeout: float = 300) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if probe():
            return time.monotonic() - t0
        time.sleep(0.2)
    raise SystemExit("timed out")


def ready_in(api: client.ApiClient, ns: str, selector: str, region: str) -> int:
    core = client.CoreV1Api(api)
    count = 0
    for pod in core.list_namespaced_pod(ns, label_selector=selector).items:
        if pod.metadata.deletion_timestamp or not pod.spec.node_name or pod.status.phase != "Running":
            continue
        try:
            node = core.read_node(pod.spec.node_name)
        except client.ApiException:
            continue
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        count += ready and node.metadata.labels["topology.kubernetes.io/region"] == region
    return count


HOLD_SECONDS = 10
HOG = "tenant"  # the other tenant's namespace


def take_lim_gpus(api: client.ApiClient, fleet: fleetmod.Fleet) -> None:
    """Someone else's pods, of a higher priority, on every L4 GPU in lim."""
    gpus = sum(int(n["status"]["allocatable"]["nvidia.com/gpu"]) for n in lim_l4(fleet))
    term = {"matchExpressions": [{"key": "topology.kubernetes.io/region", "operator": "In", "values": ["lim"]}]}
    pod = {
        "metadata": {"labels": {"app": "hog"}},
        "spec": {
            "priorityClassName": HOG,
            "affinity": {
                "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
            },
            "nodeSelector": {"nvidia.com/gpu.product": "L4"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{"name": "c", "image": "train", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
        },
    }
    spec = {"replicas": gpus, "selector": {"matchLabels": {"app": "hog"}}, "template": pod}
    client.AppsV1Api(api).create_namespaced_deployment(HOG, {"metadata": {"name": "hog"}, "spec": spec})


def give_back_lim_gpus(api: client.ApiClient) -> None:
    client.AppsV1Api(api).delete_namespaced_deployment("hog", HOG)
    until(lambda: not client.CoreV1Api(api).list_namespaced_pod(HOG, label_selector="app=hog").items)


def lose_lim(api: client.ApiClient, fleet: fleetmod.Fleet, how: str) -> float:
    """Lose lim the fast or the slow way; returns the monotonic time the loss happened."""
    core = client.CoreV1Api(api)
    if how == "fast":
        t0 = time.monotonic()
        for node in lim_l4(fleet):
            core.delete_node(node["metadata"]["name"])
        return t0
    t0 = time.monotonic()
    take_lim_gpus(api, fleet)  # the scheduler preempts the 2 replicas in lim for them
    return t0


def restore_lim(api: client.ApiClient, fleet: fleetmod.Fleet, how: str) -> None:
    if how == "fast":
        cluster.apply_nodes(api, lim_l4(fleet))
    else:
        give_back_lim_gpus(api)


def floor_round(api: client.ApiClient, fleet: fleetmod.Fleet, ns: str, how: str) -> float:
    """The control plane's own floor for a move: a Deployment pinned to lim is re-pinned to sbg the
    instant lim's nodes are deleted (a controller that decides in zero time); until 2 pods are Ready."""
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)

    def pinned(region: str) -> dict[str, Any]:
        term = {"matchExpressions": [{"key": "topology.kubernetes.io/region", "operator": "In", "values": [region]}]}
        pod = {
            "metadata": {"labels": {"app": "floor"}},
            "spec": {
                "affinity": {
                    "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
                },
                "nodeSelector": {"nvidia.com/gpu.product": "L4"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "containers": [{"name": "c", "image": "triton", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
            },
        }
        selector = {"matchLabels": {"app": "floor"}}
        return {"metadata": {"name": "floor"}, "spec": {"replicas": 2, "selector": selector, "template": pod}}

    apps.create_namespaced_deployment(ns, pinned("lim"))
    until(lambda: ready_in(api, ns, "app=floor", "lim") == 2)
    t0 = lose_lim(api, fleet, how)
    apps.replace_namespaced_deployment("floor", ns, pinned("sbg"))
    until(lambda: ready_in(api, ns, "app=floor", "sbg") == 2)
    elapsed = time.monotonic() - t0
    apps.delete_namespaced_deployment("floor", ns)
    until(lambda: not core.list_namespaced_pod(ns, label_selector="app=floor").items)
    restore_lim(api, fleet, how)
    return elapsed


def meridian_round(api: client.ApiClient, fleet: fleetmod.Fleet, ns: str, i: int, how: str) -> tuple[float, float]:
    co, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    name = f"llm-{how}{i}"
    spec = {
        "model": {"format": "onnx", "storageUri": "s3://models/m"},
        "resources": {"cpu": "1", "memory": "1Gi", "gpu": {"products": ["L4"]}},
        "replicas": 2,
        "placement": {
            "residency": ["EU"],
            "regions": [{"name": "lim", "weight": 1}, {"name": "sbg", "weight": 0}],
            "failover": {"enabled": True, "unschedulableSeconds": HOLD_SECONDS},
        },
    }
    body = {"apiVersion": "serving.meridian.dev/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": name}}
    co.create_namespaced_custom_object(
        "serving.meridian.dev", "v1alpha1", ns, "modeldeployments", {**body, "spec": spec}
    )
    sel = f"serving.meridian.dev/model-deployment={name}"
    until(lambda: ready_in(api, ns, sel, "lim") == 2)
    t0 = lose_lim(api, fleet, how)
    until(lambda: ready_in(api, ns, sel, "sbg") == 2)
    failover = time.monotonic() - t0
    t1 = time.monotonic()
    restore_lim(api, fleet, how)
    until(lambda: ready_in(api, ns, sel, "lim") == 2 and ready_in(api, ns, sel, "sbg") == 0)
    back = time.monotonic() - t1
    co.delete_namespaced_custom_object("serving.meridian.dev", "v1alpha1", ns, "modeldeployments", name)
    until(lambda: not core.list_namespaced_pod(ns, label_selector=sel).items)
    return failover, back


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    fleet = fleetmod.load_fleet(REPO / "examples" / "fleets" / "eu.yaml")
    floors: dict[str, list[float]] = {"fast": [], "slow": []}
    rounds: dict[str, list[tuple[float, float]]] = {"fast": [], "slow": []}
    with tempfile.TemporaryDirectory() as tmp:
        cp = controlplane.ControlPlane(Path(tmp), binaries.locate(), die_with_parent=True)
        kubeconfig = cp.start()
        try:
            api = cluster.api_client(kubeconfig)
            cluster.apply_fleet(api, fleet, REPO / "crds")
            for ns in ("floor", "meridian", HOG):
                client.CoreV1Api(api).create_namespace({"metadata": {"name": ns}})
            client.SchedulingV1Api(api).create_priority_class({"metadata": {"name": HOG}, "value": 1000})
            time.sleep(2)
            op = start_operator(kubeconfig, Path(tmp) / "operator.log")
            try:
                for i in range(args.rounds):
                    for how in ("fast", "slow"):
                        order = ("floor", "meridian") if i % 2 == 0 else ("meridian", "floor")
                        for side in order:
                            if side == "floor":
                                floors[how].append(floor_round(api, fleet, "floor", how))
                            else:
                                rounds[how].append(meridian_round(api, fleet, "meridian", i, how))
            finally:
                stop_operator(op)
        finally:
            cp.stop()
    for how in ("fast", "slow"):
        floor = statistics.median(floors[how])
        failover = statistics.median(r[0] for r in rounds[how])
        back = statistics.median(r[1] for r in rounds[how])
        emit(how, "floor_replace_pods", floor)
        emit(how, "meridian_failover", failover)
        emit(how, "meridian_return", back)
        line: dict[str, Any] = {"bench": "failover", "path": how, "ratio_failover_vs_floor": round(failover / floor, 2)}
        print(json.dumps(line), flush=True)


def emit(how: str, phase: str, seconds: float) -> None:
    print(json.dumps({"bench": "failover", "path": how, "phase": phase, "seconds": round(seconds, 2)}), flush=True)


if __name__ == "__main__":
    main()
