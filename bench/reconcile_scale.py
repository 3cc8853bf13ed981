"""Time from applying N ModelDeployments to all Ready, against the write floor of this control plane.

Run: python bench/reconcile_scale.py [--n 200] [--fleet examples/fleets/eu.yaml]

Same run, same control plane (kube-apiserver + scheduler + controller manager + kwok on the EU fleet):
  floor:    the same child objects Meridian would create (ConfigMap, Services, Deployment, PDB per
            model), created directly with the API client, until every Deployment has its pods Ready;
  meridian: N ModelDeployments created, `meridian run` (a separate process) doing the rest, until
            every ModelDeployment reports Ready=True.
Prints JSON lines: each phase's seconds, the ratio meridian/floor, and the operator's resident memory
at rest (before any ModelDeployment) and with N of them reconciled.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import client

from meridian.api.modeldeployment import ModelDeployment
from meridian.api.region import Region
from meridian.config import Settings
from meridian.placement.plan import Observed, plan
from meridian.render.children import children
from meridian.sim import binaries, cluster, controlplane
from meridian.sim import fleet as fleetmod

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the operator launcher is shared with the test fixtures
from tests.fixtures_operator import start_operator, stop_operator  # noqa: E402


def assign_regions(fleet: fleetmod.Fleet, n: int) -> list[str]:
    """Pin model i to the EU region with the most GPUs left, so both phases place identically and
    nothing is unschedulable: the benchmark measures reconciling, not placement."""
    free: dict[str, int] = {}
    eu = {r.name for r in fleet.regions if "EU" in r.jurisdictions}
    for pool in fleet.node_pools:
        if pool.region in eu:
            free[pool.region] = free.get(pool.region, 0) + pool.count * pool.gpus_per_node
    out = []
    for _ in range(n):
        region = max(sorted(free), key=lambda r: free[r])
        free[region] -= 1
        out.append(region)
    return out


def spec(i: int, region: str) -> dict[str, Any]:
    return {
        "model": {"format": "onnx", "storageUri": f"s3://models/m{i}"},
        "resources": {"cpu": "1", "memory": "1Gi"},
        "replicas": 1,
        "placement": {"residency": ["EU"], "regions": [{"name": region}]},
    }


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def namespace(api: client.ApiClient, name: str) -> None:
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    for _ in range(100):
        try:
            client.CoreV1Api(api).read_namespaced_service_account("default", name)
            return
        except client.ApiException:
            time.sleep(0.1)


def wait(what: str, probe: Any, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if probe():
            return time.monotonic() - start
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for {what}")


def floor_phase(api: client.ApiClient, n: int, regions: list[Region], where: list[str]) -> float:
    ns = "bench-floor"
    namespace(api, ns)
    owner = client.CoreV1Api(api).create_namespaced_config_map(ns, {"metadata": {"name": "owner"}})
    core, apps, policy = client.CoreV1Api(api), client.AppsV1Api(api), client.PolicyV1Api(api)
    start = time.monotonic()
    for i in range(n):
        md = ModelDeployment.model_validate(
            {"metadata": {"name": f"m{i}", "namespace": ns, "uid": owner.metadata.uid}, "spec": spec(i, where[i])}
        )
        p = plan(md.spec, regions, Observed())
        for obj in children(md, p, Settings()):
            obj["metadata"]["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
            ]
            kind = obj["kind"]
            if kind == "ConfigMap":
                core.create_namespaced_config_map(ns, obj)
            elif kind == "Service":
                core.create_namespaced_service(ns, obj)
            elif kind == "Deployment":
                apps.create_namespaced_deployment(ns, obj)
            else:
                policy.create_namespaced_pod_disruption_budget(ns, obj)

    def ready() -> bool:
        items = apps.list_namespaced_deployment(ns).items
        return len(items) >= n and all((d.status.ready_replicas or 0) >= d.spec.replicas for d in items)

    wait("floor deployments ready", ready, 900)
    elapsed = time.monotonic() - start
    core.delete_namespace(ns)
    return elapsed


def meridian_phase(
    api: client.ApiClient, n: int, kubeconfig: Path, log: Path, where: list[str]
) -> tuple[float, float, float]:
    ns = "bench-meridian"
    namespace(api, ns)
    op = start_operator(kubeconfig, log)
    try:
        time.sleep(5)
        at_rest = rss_mib(op.proc.pid)
        co = client.CustomObjectsApi(api)
        start = time.monotonic()
        for i in range(n):
            body = {
                "apiVersion": "serving.meridian.dev/v1alpha1",
                "kind": "ModelDeployment",
                "metadata": {"name": f"m{i}"},
                "spec": spec(i, where[i]),
            }
            co.create_namespaced_custom_object("serving.meridian.dev", "v1alpha1", ns, "modeldeployments", body)

        def ready() -> bool:
            items = co.list_namespaced_custom_object("serving.meridian.dev", "v1alpha1", ns, "modeldeployments")
            done = 0
            for item in items["items"]:
                conds = item.get("status", {}).get("conditions", [])
                done += any(c["type"] == "Ready" and c["status"] == "True" for c in conds)
            return done >= n

        wait("ModelDeployments ready", ready, 1800)
        elapsed = time.monotonic() - start
        return elapsed, at_rest, rss_mib(op.proc.pid)
    finally:
        stop_operator(op)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--fleet", type=Path, default=REPO / "examples" / "fleets" / "eu.yaml")
    args = ap.parse_args()
    fleet = fleetmod.load_fleet(args.fleet)
    with tempfile.TemporaryDirectory() as tmp:
        cp = controlplane.ControlPlane(Path(tmp), binaries.locate(), die_with_parent=True)
        kubeconfig = cp.start()
        try:
            run(args, fleet, kubeconfig, Path(tmp))
        finally:
            cp.stop()


def run(args: argparse.Namespace, fleet: fleetmod.Fleet, kubeconfig: Path, tmp: Path) -> None:
    api = cluster.api_client(kubeconfig)
    cluster.apply_fleet(api, fleet, REPO / "crds")
    regions = [Region.model_validate(r) for r in fleetmod.region_manifests(fleet)]
    where = assign_regions(fleet, args.n)
    floor = floor_phase(api, args.n, regions, where)
    print(json.dumps({"bench": "reconcile_scale", "phase": "floor", "n": args.n, "seconds": round(floor, 2)}))
    seconds, rest, loaded = meridian_phase(api, args.n, kubeconfig, tmp / "operator.log", where)
    print(json.dumps({"bench": "reconcile_scale", "phase": "meridian", "n": args.n, "seconds": round(seconds, 2)}))
    print(json.dumps({"bench": "reconcile_scale", "ratio_meridian_vs_floor": round(seconds / floor, 2)}))
    print(json.dumps({"bench": "operator_rss_mib", "at_rest": round(rest, 1), f"at_n{args.n}": round(loaded, 1)}))


if __name__ == "__main__":
    main()
