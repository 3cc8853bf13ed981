"""Residency eviction on the simulated EU fleet: from a Region losing a jurisdiction to the last pod gone.

Run: python bench/residency.py [--rounds 3]

Same control plane, same run, each phase in a fresh namespace (deleted, and gone, afterwards):
  floor:    a plain Deployment with 2 pods pinned to waw's nodes; at t0 it is deleted (Background) and
            its pods are deleted with no grace — what the operator does for a residency violation, so
            what the control plane alone needs when the decision takes no time;
  meridian: a ModelDeployment (residency EU, regions [waw], 2 replicas), Ready with 2 pods Running; at
            t0 Region waw's jurisdictions become [EEA, PL] (EU dropped); afterwards they are restored.
Both phases stop at the same finish line: a pod list (polled every 0.02 s) that is empty — a pod being
deleted still counts. The phases alternate (floor first in odd rounds, meridian first in even ones).
Prints one JSON line per phase per round, then the medians and the ratio meridian/floor.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubernetes import client

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.fixtures_operator import start_operator, stop_operator  # noqa: E402

from meridian.api.region import NODE_REGION_LABEL  # noqa: E402
from meridian.sim import binaries, cluster, controlplane  # noqa: E402
from meridian.sim import fleet as fleetmod  # noqa: E402

GROUP, VERSION = "serving.meridian.dev", "v1alpha1"
REGION = "waw"
KEPT = ["EU", "EEA", "PL"]
DROPPED = ["EEA", "PL"]  # EU gone
POLL = 0.02


def until(what: str, probe: Callable[[], Any], timeout: float = 120, interval: float = 0.2) -> float:
    """Seconds until probe() is truthy; raises naming what never happened."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if probe():
            return time.monotonic() - t0
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def pods(api: client.ApiClient, ns: str, selector: str) -> list[client.V1Pod]:
    return list(client.CoreV1Api(api).list_namespaced_pod(ns, label_selector=selector).items)


def running(api: client.ApiClient, ns: str, selector: str) -> int:
    return sum(not p.metadata.deletion_timestamp and p.status.phase == "Running" for p in pods(api, ns, selector))


def all_gone(api: client.ApiClient, ns: str, selector: str, t0: float, timeout: float = 120) -> float:
    """The finish line of both phases: seconds from t0 until no pod matches, terminating ones included."""
    try:
        until(f"no pod {selector} in {ns}", lambda: not pods(api, ns, selector), timeout, POLL)
    except RuntimeError as e:
        left = [(p.metadata.name, p.status.phase, p.metadata.deletion_timestamp) for p in pods(api, ns, selector)]
        raise RuntimeError(f"{e}; still there (name, phase, deletionTimestamp): {left}") from None
    return time.monotonic() - t0


@contextmanager
def namespace(api: client.ApiClient, name: str) -> Iterator[str]:
    """A fresh namespace with its default ServiceAccount; deleted, and waited for, afterwards."""
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name}})
    try:
        until(f"ServiceAccount default in {name}", lambda: core.list_namespaced_service_account(name).items, 30, POLL)
        yield name
    finally:
        core.delete_namespace(name)

        def gone() -> bool:
            try:
                core.read_namespace(name)
            except client.ApiException as e:
                if e.status == 404:
                    return True
                raise
            return False

        until(f"namespace {name} gone", gone, 180)


def set_jurisdictions(api: client.ApiClient, tags: list[str]) -> None:
    client.CustomObjectsApi(api).patch_cluster_custom_object(
        GROUP,
        VERSION,
        "regions",
        REGION,
        {"spec": {"jurisdictions": tags}},
        _content_type="application/merge-patch+json",
    )


def floor_round(api: client.ApiClient, ns: str) -> float:
    """The control plane's own floor: a Deployment pinned to waw, deleted together with its pods (no
    grace) the instant the decision is made; until no pod of it is left."""
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    term = {"matchExpressions": [{"key": NODE_REGION_LABEL, "operator": "In", "values": [REGION]}]}
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}
    pod = {
        "metadata": {"labels": {"app": "floor"}},
        "spec": {
            "affinity": affinity,
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{"name": "c", "image": "triton", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
        },
    }
    spec = {"replicas": 2, "selector": {"matchLabels": {"app": "floor"}}, "template": pod}
    apps.create_namespaced_deployment(ns, {"metadata": {"name": "floor"}, "spec": spec})
    until("2 floor pods Running", lambda: running(api, ns, "app=floor") == 2)
    t0 = time.monotonic()
    apps.delete_namespaced_deployment("floor", ns, body=client.V1DeleteOptions(propagation_policy="Background"))
    for p in pods(api, ns, "app=floor"):
        try:
            core.delete_namespaced_pod(p.metadata.name, ns, body=client.V1DeleteOptions(grace_period_seconds=0))
        except client.ApiException as e:
            if e.status != 404:
                raise
    return all_gone(api, ns, "app=floor", t0)


def ready(api: client.ApiClient, ns: str, name: str) -> bool:
    md = client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, ns, "modeldeployments", name)
    conds = (md.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def meridian_round(api: client.ApiClient, ns: str, r: int) -> float:
    """A ModelDeployment confined to waw by residency EU; waw drops EU; until no pod of it is left."""
    name = f"llm{r}"
    spec = {
        "model": {"format": "onnx", "storageUri": "s3://models/m"},
        "resources": {"cpu": "1", "memory": "1Gi", "gpu": {"products": ["L4"]}},
        "replicas": 2,
        "placement": {"residency": ["EU"], "regions": [{"name": REGION}]},
    }
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "metadata": {"name": name}, "spec": spec}
    client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, ns, "modeldeployments", body)
    sel = f"serving.meridian.dev/model-deployment={name}"
    until(f"{name} Ready with 2 pods Running", lambda: ready(api, ns, name) and running(api, ns, sel) == 2)
    t0 = time.monotonic()
    try:
        set_jurisdictions(api, DROPPED)
        return all_gone(api, ns, sel, t0)
    finally:
        set_jurisdictions(api, KEPT)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    fleet = fleetmod.load_fleet(REPO / "examples" / "fleets" / "eu.yaml")
    seconds: dict[str, list[float]] = {"floor": [], "meridian": []}
    with tempfile.TemporaryDirectory() as tmp:
        cp = controlplane.ControlPlane(Path(tmp), binaries.locate(), die_with_parent=True)
        kubeconfig = cp.start()
        try:
            api = cluster.api_client(kubeconfig)
            cluster.apply_fleet(api, fleet, REPO / "crds")
            time.sleep(2)
            op = start_operator(kubeconfig, Path(tmp) / "operator.log")
            try:
                for r in range(1, args.rounds + 1):
                    order = ("floor", "meridian") if r % 2 else ("meridian", "floor")
                    for phase in order:
                        with namespace(api, f"{phase}-{r}") as ns:
                            s = floor_round(api, ns) if phase == "floor" else meridian_round(api, ns, r)
                        seconds[phase].append(s)
                        line = {"bench": "residency_eviction", "phase": phase, "round": r, "seconds": round(s, 2)}
                        print(json.dumps(line), flush=True)
            except BaseException:
                print(f"operator log tail:\n{op.log_tail(60)}", file=sys.stderr)
                raise
            finally:
                stop_operator(op)
        finally:
            cp.stop()
    floor = statistics.median(seconds["floor"])
    meridian = statistics.median(seconds["meridian"])
    summary = {
        "bench": "residency_eviction",
        "rounds": args.rounds,
        "floor_median_seconds": round(floor, 2),
        "meridian_median_seconds": round(meridian, 2),
        "ratio_meridian_vs_floor": round(meridian / floor, 2),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
