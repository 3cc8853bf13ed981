"""Failover time on the simulated EU fleet: from a region's nodes lost to replicas Ready elsewhere.

Run: python bench/failover.py [--rounds 3]

Same control plane, same run:
  floor:    a plain Deployment pinned to lim with 2 pods; lim's L4 nodes are deleted and the
            Deployment is re-pinned to sbg at once — what the control plane alone needs to move pods
            when the decision takes no time;
  meridian: a ModelDeployment (residency EU, regions lim weight 1, sbg weight 0, failover after 10 s),
            same node loss, timed until its 2 replicas are Ready in sbg; then the nodes come back and
            we time the return to lim.
Prints one JSON line per phase and the ratio meridian/floor (medians over the rounds).
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


def floor_round(api: client.ApiClient, fleet: fleetmod.Fleet, ns: str) -> float:
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
    lost = lim_l4(fleet)
    t0 = time.monotonic()
    for node in lost:
        core.delete_node(node["metadata"]["name"])
    apps.replace_namespaced_deployment("floor", ns, pinned("sbg"))
    until(lambda: ready_in(api, ns, "app=floor", "sbg") == 2)
    elapsed = time.monotonic() - t0
    apps.delete_namespaced_deployment("floor", ns)
    cluster.apply_nodes(api, lost)
    return elapsed


def meridian_round(api: client.ApiClient, fleet: fleetmod.Fleet, ns: str, i: int) -> tuple[float, float]:
    co, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    name = f"llm{i}"
    spec = {
        "model": {"format": "onnx", "storageUri": "s3://models/m"},
        "resources": {"cpu": "1", "memory": "1Gi", "gpu": {"products": ["L4"]}},
        "replicas": 2,
        "placement": {
            "residency": ["EU"],
            "regions": [{"name": "lim", "weight": 1}, {"name": "sbg", "weight": 0}],
            "failover": {"enabled": True, "unschedulableSeconds": 10},
        },
    }
    body = {"apiVersion": "serving.meridian.dev/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": name}}
    co.create_namespaced_custom_object(
        "serving.meridian.dev", "v1alpha1", ns, "modeldeployments", {**body, "spec": spec}
    )
    sel = f"serving.meridian.dev/model-deployment={name}"
    until(lambda: ready_in(api, ns, sel, "lim") == 2)
    lost = lim_l4(fleet)
    t0 = time.monotonic()
    for node in lost:
        core.delete_node(node["metadata"]["name"])
    until(lambda: ready_in(api, ns, sel, "sbg") == 2)
    failover = time.monotonic() - t0
    t1 = time.monotonic()
    cluster.apply_nodes(api, lost)
    until(lambda: ready_in(api, ns, sel, "lim") == 2 and ready_in(api, ns, sel, "sbg") == 0)
    back = time.monotonic() - t1
    co.delete_namespaced_custom_object("serving.meridian.dev", "v1alpha1", ns, "modeldeployments", name)
    return failover, back


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    fleet = fleetmod.load_fleet(REPO / "examples" / "fleets" / "eu.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        cp = controlplane.ControlPlane(Path(tmp), binaries.locate(), die_with_parent=True)
        kubeconfig = cp.start()
        try:
            api = cluster.api_client(kubeconfig)
            cluster.apply_fleet(api, fleet, REPO / "crds")
            for ns in ("floor", "meridian"):
                client.CoreV1Api(api).create_namespace({"metadata": {"name": ns}})
            time.sleep(2)
            floors = [floor_round(api, fleet, "floor") for _ in range(args.rounds)]
            op = start_operator(kubeconfig, Path(tmp) / "operator.log")
            try:
                rounds = [meridian_round(api, fleet, "meridian", i) for i in range(args.rounds)]
            finally:
                stop_operator(op)
        finally:
            cp.stop()
    floor = statistics.median(floors)
    failover = statistics.median(r[0] for r in rounds)
    back = statistics.median(r[1] for r in rounds)
    print(json.dumps({"bench": "failover", "phase": "floor_replace_pods", "seconds": round(floor, 2)}))
    print(json.dumps({"bench": "failover", "phase": "meridian_failover", "seconds": round(failover, 2)}))
    print(json.dumps({"bench": "failover", "phase": "meridian_return", "seconds": round(back, 2)}))
    print(json.dumps({"bench": "failover", "ratio_failover_vs_floor": round(failover / floor, 2)}))


if __name__ == "__main__":
    main()
