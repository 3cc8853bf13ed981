"""Meridian behind Karmada on the simulated fleet (examples/fleets/karmada.yaml: gra, par, lim in the
EU, eri in the UK; four 8-GPU A100 nodes each).

Run: MERIDIAN_BIN_DIR=~/.cache/meridian/bin python bench/karmada.py [--models 100] [--reps 3] [--rounds 3]

convergence: `--models` ModelDeployments (three in four EU-only, the rest UK-only; one replica on one
  A100 each) created at once in a fresh namespace, timed until every one says Ready. Two fleets,
  both up for the whole run, each with its own operator: the same four regions and nodes as node
  labels of one cluster (`single`), and Karmada with one member cluster per region (`karmada`). The
  order alternates rep by rep; each phase starts once the previous phase's namespace is gone, from
  the API server and from every member. Medians and their ratio.
failover: a 2-replica EU model on gra (weights gra 1, lim 0, failover hold 10 s); gra's kube-apiserver
  is killed; timed until both replicas are Ready in lim, read from lim itself; then gra is revived
  and the return timed. The floor is Karmada alone deciding in no time: a Deployment propagated to
  gra, re-pinned to lim (its PropagationPolicy patched) the instant gra's API server is killed.
  Floor and Meridian alternate round by round; Meridian's time is also given net of the hold.
memory: resident memory of every process of the Karmada fleet and of its operator, after the run.
Prints one JSON line per measurement on stdout; what the fleet logs goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.fixtures_operator import OperatorProcess, start_operator, stop_operator  # noqa: E402

from meridian import GROUP, VERSION  # noqa: E402
from meridian import log as logging_setup  # noqa: E402
from meridian.render.labels import MD_LABEL  # noqa: E402
from meridian.sim import binaries, cluster, commands, controlplane, members, processes  # noqa: E402
from meridian.sim import fleet as fleetmod  # noqa: E402

FLEET = REPO / "examples" / "fleets" / "karmada.yaml"
HOLD_SECONDS = 10
POLICY = ("policy.karmada.io", "v1alpha1", "propagationpolicies")
MERGE = "application/merge-patch+json"


def emit(**line: Any) -> None:
    print(json.dumps(line), flush=True)


def until(probe: Callable[[], Any], timeout: float = 600, interval: float = 0.25) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if probe():
                return time.monotonic() - t0
        except (ApiException, OSError):
            pass  # a member being killed or revived
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout}s")


class Side:
    """One fleet and its operator: where models are created, and the clusters their pods run in."""

    def __init__(self, name: str, kubeconfig: Path, clusters: dict[str, client.ApiClient], log: Path) -> None:
        self.name = name
        self.kubeconfig = kubeconfig
        self.api = cluster.api_client(kubeconfig)
        self.clusters = clusters  # where pods run: the one cluster, or each member
        self.operator: OperatorProcess = start_operator(kubeconfig, log)

    def namespace(self, prefix: str) -> str:
        core = client.CoreV1Api(self.api)
        name = f"{prefix}-{int(time.time() * 1000) % 10**8}"
        core.create_namespace({"metadata": {"name": name}})
        until(lambda: core.read_namespaced_service_account("default", name))
        return name

    def drop(self, ns: str) -> None:
        """Delete the namespace and wait until nothing of it is left anywhere, pods included."""
        core = client.CoreV1Api(self.api)
        core.delete_namespace(ns)

        def gone() -> bool:
            try:
                core.read_namespace(ns)
                return False
            except ApiException as e:
                if e.status != 404:
                    raise
            return all(not client.CoreV1Api(a).list_namespaced_pod(ns).items for a in self.clusters.values())

        until(gone, timeout=900, interval=1.0)


def model(name: str, residency: list[str], **over: Any) -> dict[str, Any]:
    spec = {
        "model": {"format": "onnx", "storageUri": "s3://models/m"},
        "resources": {"cpu": "1", "memory": "1Gi", "gpu": {"count": 1}},
        "replicas": 1,
        "placement": {"residency": residency},
        **over,
    }
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "metadata": {"name": name}, "spec": spec}


def ready_models(api: client.ApiClient, ns: str) -> int:
    items = client.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, ns, "modeldeployments")["items"]
    return sum(
        any(c["type"] == "Ready" and c["status"] == "True" for c in (m.get("status") or {}).get("conditions") or [])
        for m in items
    )


def converge(side: Side, n: int, rep: int) -> float:
    ns = side.namespace(f"conv-{side.name}-{rep}")
    co = client.CustomObjectsApi(side.api)
    t0 = time.monotonic()
    for i in range(n):
        residency = ["EU"] if i % 4 else ["UK"]
        co.create_namespaced_custom_object(GROUP, VERSION, ns, "modeldeployments", model(f"m{i}", residency))
    until(lambda: ready_models(side.api, ns) == n, timeout=900, interval=0.5)
    elapsed = time.monotonic() - t0
    side.drop(ns)
    return elapsed


def ready_in(api: client.ApiClient, ns: str, selector: str) -> int:
    pods = client.CoreV1Api(api).list_namespaced_pod(ns, label_selector=selector).items
    return sum(
        p.status.phase == "Running"
        and not p.metadata.deletion_timestamp
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        for p in pods
    )


def revive(side: Side, plane: controlplane.ControlPlane) -> None:
    plane.revive("kube-apiserver")
    until(lambda: client.CoreV1Api(side.clusters["gra"]).list_namespace().items, timeout=120)


def floor_round(side: Side, plane: controlplane.ControlPlane, ns: str) -> float:
    """A Deployment propagated to gra, re-pinned to lim the instant gra is lost: Karmada alone."""
    apps, co = client.AppsV1Api(side.api), client.CustomObjectsApi(side.api)
    pod = {
        "metadata": {"labels": {"app": "floor"}},
        "spec": {
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [
                {"name": "c", "image": "triton", "resources": {"limits": {"nvidia.com/gpu": "1"}}},
            ],
        },
    }
    spec = {"replicas": 2, "selector": {"matchLabels": {"app": "floor"}}, "template": pod}
    apps.create_namespaced_deployment(ns, {"metadata": {"name": "floor"}, "spec": spec})

    def policy(target: str) -> dict[str, Any]:
        return {
            "apiVersion": "policy.karmada.io/v1alpha1",
            "kind": "PropagationPolicy",
            "metadata": {"name": "floor"},
            "spec": {
                "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "floor"}],
                "placement": {"clusterAffinity": {"clusterNames": [target]}},
            },
        }

    co.create_namespaced_custom_object(*POLICY[:2], ns, POLICY[2], policy("gra"))
    until(lambda: ready_in(side.clusters["gra"], ns, "app=floor") == 2)
    t0 = time.monotonic()
    plane.kill("kube-apiserver")
    co.patch_namespaced_custom_object(
        *POLICY[:2],
        ns,
        POLICY[2],
        "floor",
        {"spec": policy("lim")["spec"]},
        _content_type="application/merge-patch+json",
    )
    until(lambda: ready_in(side.clusters["lim"], ns, "app=floor") == 2)
    elapsed = time.monotonic() - t0
    revive(side, plane)
    apps.delete_namespaced_deployment("floor", ns)
    co.delete_namespaced_custom_object(*POLICY[:2], ns, POLICY[2], "floor")
    until(lambda: not any(ready_in(a, ns, "app=floor") for a in side.clusters.values()))
    return elapsed


def meridian_round(side: Side, plane: controlplane.ControlPlane, ns: str, i: int) -> tuple[float, float]:
    name = f"llm{i}"
    placement = {
        "residency": ["EU"],
        "regions": [{"name": "gra", "weight": 1}, {"name": "lim", "weight": 0}],
        "failover": {"enabled": True, "unschedulableSeconds": HOLD_SECONDS},
    }
    body = model(name, ["EU"], replicas=2, placement=placement)
    client.CustomObjectsApi(side.api).create_namespaced_custom_object(GROUP, VERSION, ns, "modeldeployments", body)
    sel = f"{MD_LABEL}={name}"
    until(lambda: ready_in(side.clusters["gra"], ns, sel) == 2)
    t0 = time.monotonic()
    plane.kill("kube-apiserver")
    until(lambda: ready_in(side.clusters["lim"], ns, sel) == 2)
    failover = time.monotonic() - t0
    t1 = time.monotonic()
    revive(side, plane)
    until(lambda: ready_in(side.clusters["gra"], ns, sel) == 2 and ready_in(side.clusters["lim"], ns, sel) == 0)
    back = time.monotonic() - t1
    client.CustomObjectsApi(side.api).delete_namespaced_custom_object(GROUP, VERSION, ns, "modeldeployments", name)
    until(lambda: not any(ready_in(a, ns, sel) for a in side.clusters.values()))
    return failover, back


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging_setup.configure("INFO", "console")  # the fleet's own lines to stderr: stdout is the JSON lines
    bins = binaries.locate()
    spec = fleetmod.load_fleet(FLEET)
    work = Path(tempfile.mkdtemp(prefix="bench-karmada-"))
    single_cp = controlplane.ControlPlane(work / "single", bins, die_with_parent=True, pod_cidr="127.44.0.0/16")
    sides: list[Side] = []
    try:
        kubeconfig = single_cp.start()
        api = cluster.api_client(kubeconfig)
        cluster.apply_fleet(api, spec.model_copy(update={"topology": "cluster"}), REPO / "crds")
        sides.append(Side("single", kubeconfig, {"all": api}, work / "single-operator.log"))
        t0 = time.monotonic()
        plane, planes = members.start(spec, work / "karmada", REPO / "crds", die_with_parent=True, timeout=300)
        emit(metric="karmada_fleet_start_seconds", value=round(time.monotonic() - t0, 1), members=len(planes))
        by_region = {r.name: cp for r, cp in zip(spec.regions, planes, strict=True)}
        member_apis = {r: cluster.api_client(cp.kubeconfig) for r, cp in by_region.items()}
        sides.append(Side("karmada", plane.kubeconfig, member_apis, work / "karmada-operator.log"))

        times: dict[str, list[float]] = {s.name: [] for s in sides}
        for rep in range(args.reps):
            for side in sides if rep % 2 == 0 else reversed(sides):
                elapsed = converge(side, args.models, rep)
                times[side.name].append(elapsed)
                emit(metric="convergence_seconds", side=side.name, rep=rep, models=args.models, value=round(elapsed, 2))
        medians = {k: statistics.median(v) for k, v in times.items()}
        emit(
            metric="convergence_median_seconds",
            models=args.models,
            single=round(medians["single"], 2),
            karmada=round(medians["karmada"], 2),
            ratio=round(medians["karmada"] / medians["single"], 2),
        )

        karmada_side, gra = sides[1], by_region["gra"]
        ns = karmada_side.namespace("failover")
        floors, moves, backs = [], [], []
        for i in range(args.rounds):
            for who in ("floor", "meridian") if i % 2 == 0 else ("meridian", "floor"):
                if who == "floor":
                    floors.append(floor_round(karmada_side, gra, ns))
                    emit(metric="failover_seconds", side="floor", round=i, value=round(floors[-1], 2))
                else:
                    moved, back = meridian_round(karmada_side, gra, ns, i)
                    moves.append(moved)
                    backs.append(back)
                    emit(metric="failover_seconds", side="meridian", round=i, value=round(moved, 2))
                    emit(metric="return_seconds", side="meridian", round=i, value=round(back, 2))
        floor, moved = statistics.median(floors), statistics.median(moves)
        emit(
            metric="failover_median_seconds",
            floor=round(floor, 2),
            meridian=round(moved, 2),
            meridian_net_of_hold=round(moved - HOLD_SECONDS, 2),
            hold_seconds=HOLD_SECONDS,
            ratio_net_of_hold=round((moved - HOLD_SECONDS) / floor, 2),
            return_median=round(statistics.median(backs), 2),
        )

        total = 0.0
        for rec in commands.all_processes(work / "karmada"):
            rss = processes.rss_mib(rec.pid) or 0.0
            total += rss
            emit(metric="rss_mib", component=rec.name, value=round(rss, 1))
        operator_rss = processes.rss_mib(karmada_side.operator.proc.pid) or 0.0
        emit(metric="rss_mib_karmada_fleet_total", value=round(total, 1), operator=round(operator_rss, 1))
    finally:
        for side in sides:
            stop_operator(side.operator)
        members.stop(work / "karmada")
        single_cp.stop()


if __name__ == "__main__":
    main()
