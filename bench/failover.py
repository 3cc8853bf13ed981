"""Failover time on the simulated EU fleet: from a region lost to replicas Ready elsewhere.

Run: python bench/failover.py [--rounds 3]

Three ways to lose lim, each measured for a plain Deployment (the floor) and for Meridian:
  nodes: lim's L4 nodes are deleted;
  gpus:  another tenant's higher-priority pods take every L4 GPU in lim, preempting the 2 replicas
         there, which come back Pending, Unschedulable (Insufficient nvidia.com/gpu). Meridian's
         Region capacity (kept from pod events) shows lim full at once, so it moves without waiting
         out the failover hold;
  cpu:   the other tenant's pods take every CPU of lim's L4 nodes instead. The replicas come back
         Pending (Insufficient cpu) while lim's GPUs look free, so only the failover hold
         (`unschedulableSeconds`, 10 s) moves them: the slow path, expected at floor + hold. Nor
         does anything show lim's CPUs coming back, so the replicas return only when the hold ends
         (5 min): that return is not timed.
  floor:    a plain Deployment pinned to lim with 2 pods, re-pinned to sbg the instant lim is lost:
            what the control plane alone needs to move pods when the decision takes no time;
  meridian: a ModelDeployment (residency EU, regions lim weight 1, sbg weight 0, failover after 10 s),
            timed until its 2 replicas are Ready in sbg; then lim is given back and the return is
            timed too.
One operator runs throughout; the floor and Meridian alternate round by round. Prints one JSON line
per phase (medians over the rounds) and the ratios meridian/floor (for cpu, net of the hold).
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

from meridian.api.modeldeployment import Failover  # noqa: E402
from meridian.placement.failover import hold_seconds  # noqa: E402
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
PATHS = ("nodes", "gpus", "cpu")
# what Meridian's pods ask for (resources cpu 1, memory 1Gi, one L4), so the tenant preempts both alike
FLOOR_RESOURCES = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"nvidia.com/gpu": "1"}}


def take_lim(api: client.ApiClient, fleet: fleetmod.Fleet, what: str) -> None:
    """Someone else's pods, of a higher priority, on every L4 GPU (`gpus`) or every CPU (`cpu`) in lim."""
    nodes = lim_l4(fleet)
    if what == "gpus":
        replicas = sum(int(n["status"]["allocatable"]["nvidia.com/gpu"]) for n in nodes)
        resources: dict[str, Any] = {"limits": {"nvidia.com/gpu": "1"}}
    else:  # one pod per node asking for all of its CPU
        replicas = len(nodes)
        resources = {"requests": {"cpu": nodes[0]["status"]["allocatable"]["cpu"]}}
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
            "containers": [{"name": "c", "image": "train", "resources": resources}],
        },
    }
    spec = {"replicas": replicas, "selector": {"matchLabels": {"app": "hog"}}, "template": pod}
    client.AppsV1Api(api).create_namespaced_deployment(HOG, {"metadata": {"name": "hog"}, "spec": spec})


def give_back_lim(api: client.ApiClient) -> None:
    client.AppsV1Api(api).delete_namespaced_deployment("hog", HOG)
    until(lambda: not client.CoreV1Api(api).list_namespaced_pod(HOG, label_selector="app=hog").items)


def lose_lim(api: client.ApiClient, fleet: fleetmod.Fleet, how: str) -> float:
    """Lose lim one of the three ways; returns the monotonic time the loss happened."""
    t0 = time.monotonic()
    if how == "nodes":
        core = client.CoreV1Api(api)
        for node in lim_l4(fleet):
            core.delete_node(node["metadata"]["name"])
    else:
        take_lim(api, fleet, how)  # the scheduler preempts the 2 replicas in lim for them
    return t0


def restore_lim(api: client.ApiClient, fleet: fleetmod.Fleet, how: str) -> None:
    if how == "nodes":
        cluster.apply_nodes(api, lim_l4(fleet))
    else:
        give_back_lim(api)


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
                "containers": [{"name": "c", "image": "triton", "resources": FLOOR_RESOURCES}],
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


def meridian_round(
    api: client.ApiClient, fleet: fleetmod.Fleet, ns: str, i: int, how: str
) -> tuple[float, float | None]:
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
    back = None
    if how != "cpu":  # lim's CPUs coming back is not visible in GPU counts: the hold ends by time alone
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
    floors: dict[str, list[float]] = {how: [] for how in PATHS}
    rounds: dict[str, list[tuple[float, float | None]]] = {how: [] for how in PATHS}
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
                    for how in PATHS:
                        order = ("floor", "meridian") if i % 2 == 0 else ("meridian", "floor")
                        for side in order:
                            print(f"round {i} {how} {side}", file=sys.stderr, flush=True)
                            if side == "floor":
                                floors[how].append(floor_round(api, fleet, "floor", how))
                            else:
                                rounds[how].append(meridian_round(api, fleet, "meridian", i, how))
            except BaseException:
                print((Path(tmp) / "operator.log").read_text()[-6000:], file=sys.stderr)
                raise
            finally:
                stop_operator(op)
        finally:
            cp.stop()
    for how in PATHS:
        floor = statistics.median(floors[how])
        failover = statistics.median(r[0] for r in rounds[how])
        emit(how, "floor_replace_pods", floor)
        emit(how, "meridian_failover", failover)
        backs = [r[1] for r in rounds[how] if r[1] is not None]
        if backs:
            emit(how, "meridian_return", statistics.median(backs))
        line: dict[str, Any] = {"bench": "failover", "path": how, "ratio_failover_vs_floor": round(failover / floor, 2)}
        if how == "cpu":  # only the hold can move these replicas: compare what is left after it
            line["hold_seconds"] = HOLD_SECONDS
            line["ratio_net_of_hold_vs_floor"] = round((failover - HOLD_SECONDS) / floor, 2)
            line["return_after_seconds"] = hold_seconds(Failover.model_validate({"unschedulableSeconds": HOLD_SECONDS}))
        print(json.dumps(line), flush=True)


def emit(how: str, phase: str, seconds: float) -> None:
    print(json.dumps({"bench": "failover", "path": how, "phase": phase, "seconds": round(seconds, 2)}), flush=True)


if __name__ == "__main__":
    main()
