"""N models from nothing to every pod Ready: Meridian against the write floor of the same control plane.

Run: python bench/reconcile_scale.py [--n 1000] [--reps 3] [--fleet examples/fleets/cloud-46.yaml]

One control plane (kube-apiserver, scheduler, controller manager, kwok with the fleet's nodes) for
the whole run. Each model is one replica of one GPU, pinned to the region with the most GPUs left
and required to reside in that region's first jurisdiction, so both phases place the same pods in
the same regions and nothing is unschedulable.
  floor:    the children Meridian renders for each model (ConfigMap, Services, Deployment, PDB),
            server-side applied by the same async client, one model at a time per worker, with as
            many workers as the operator runs reconciles at once;
  meridian: N ModelDeployments created, `meridian run` (a separate process, started and synced
            before the clock starts) doing the rest.
Both phases end at the same line: N pods Ready in the namespace, counted the same way, from a watch
(polling a list of N pods every second would load the API server more the longer a phase takes).
Each phase gets a fresh namespace, and starts only after the previous one is deleted and gone. The
order alternates over the repetitions; medians are printed.

Every phase reports the CPU seconds each process spent in it (the control plane's components, the
bench, the operator): on a machine whose cores they all share, that is where the time goes.
Meridian's phase also reports, from the API server's audit log, its requests per model during
convergence and per minute in the steady state that follows (opened once the operator has written
nothing for 16 s), and its resident memory: peak during convergence and at rest with N models.
Prints JSON lines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes_asyncio import client as aclient
from kubernetes_asyncio import config as aconfig

from meridian.api.modeldeployment import ModelDeployment
from meridian.api.region import Region
from meridian.config import Settings
from meridian.placement.plan import Observed, plan
from meridian.reconcile.kube import Kube
from meridian.reconcile.regions import COUNTS_EVERY
from meridian.render.children import children
from meridian.sim import audit, binaries, cluster, controlplane
from meridian.sim import fleet as fleetmod

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the operator launcher is shared with the test fixtures
from tests.fixtures_operator import OperatorProcess, start_operator, stop_operator  # noqa: E402

STEADY_SECONDS = 60.0


def emit(**fields: Any) -> None:
    print(json.dumps({"bench": "reconcile_scale", **fields}), flush=True)


def assign(fleet: fleetmod.Fleet, regions: list[Region], n: int) -> list[Region]:
    """Model i's region: the one with the most GPUs left, so all n fit and both phases agree."""
    free: dict[str, int] = {}
    for pool in fleet.node_pools:
        free[pool.region] = free.get(pool.region, 0) + pool.count * pool.gpus_per_node
    if sum(free.values()) < n:
        raise SystemExit(f"the fleet has {sum(free.values())} GPUs, fewer than {n} models")
    by_name = {r.name: r for r in regions}
    out = []
    for _ in range(n):
        name = max(sorted(free), key=lambda r: free[r])
        free[name] -= 1
        out.append(by_name[name])
    return out


def spec(i: int, where: list[Region]) -> dict[str, Any]:
    region = where[i]
    return {
        "model": {"format": "onnx", "storageUri": f"s3://models/m{i}"},
        "resources": {"cpu": "1", "memory": "1Gi"},
        "replicas": 1,
        "placement": {"residency": [region.spec.jurisdictions[0]], "regions": [{"name": region.name}]},
    }


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds each process spends between start() and stop(): where a phase's time goes on a
    machine whose cores every component shares."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids, self.before = pids, {name: cpu_seconds(pid) for name, pid in pids.items()}

    def stop(self) -> dict[str, float]:
        return {name: round(cpu_seconds(pid) - self.before[name], 1) for name, pid in self.pids.items()}


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Sampler(threading.Thread):
    """The operator's resident memory every half second."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            self.peak = max(self.peak, rss_mib(self.pid))


def fresh_namespace(core: client.CoreV1Api, name: str) -> None:
    core.create_namespace({"metadata": {"name": name}})
    until = time.monotonic() + 60
    while time.monotonic() < until:
        try:
            core.read_namespaced_service_account("default", name)
            return
        except client.ApiException:
            time.sleep(0.1)
    raise SystemExit(f"namespace {name} has no default ServiceAccount after 60 s")


def delete_and_wait(core: client.CoreV1Api, name: str) -> float:
    start = time.monotonic()
    core.delete_namespace(name)
    while time.monotonic() - start < 900:
        try:
            core.read_namespace(name)
        except client.ApiException as e:
            if e.status == 404:
                return time.monotonic() - start
            raise
        time.sleep(1)
    raise SystemExit(f"namespace {name} still there after 900 s")


def wait_quiet(op: OperatorProcess, quiet: float = COUNTS_EVERY + 1, timeout: float = 600.0) -> float:
    """Seconds until the operator has written nothing for `quiet` seconds (its own write counter),
    longer than a Region's GPU counts may be held back."""
    start = time.monotonic()
    last, since = op.writes(), time.monotonic()
    before = op.metric("meridian_api_writes_total")
    while time.monotonic() - start < timeout:
        time.sleep(1)
        now = op.writes()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return since - start
    after = op.metric("meridian_api_writes_total")
    kinds = {dict(k).get("kind", "?") + " " + dict(k).get("verb", "?"): v - before.get(k, 0) for k, v in after.items()}
    raise SystemExit(
        f"the operator still writes {timeout:.0f} s after every pod was Ready: "
        f"{ {k: v for k, v in kinds.items() if v} }\n{op.log_tail(40)}"
    )


class ReadyPods(threading.Thread):
    """The finish line, the same for both phases: Ready, non-terminating pods in the namespace,
    counted from a watch (raw JSON), so that waiting for it adds no load of its own."""

    SELECTOR = "app.kubernetes.io/managed-by=meridian"

    def __init__(self, core: client.CoreV1Api, ns: str) -> None:
        super().__init__(daemon=True)
        self.core, self.ns, self.ready, self.done = core, ns, set[str](), threading.Event()

    def _see(self, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        conditions = (pod.get("status") or {}).get("conditions") or []
        ok = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        if ok and not pod["metadata"].get("deletionTimestamp"):
            self.ready.add(name)
        else:
            self.ready.discard(name)

    def run(self) -> None:
        while not self.done.is_set():
            listed = json.loads(
                self.core.list_namespaced_pod(self.ns, label_selector=self.SELECTOR, _preload_content=False).data
            )
            self.ready = set()
            for pod in listed["items"]:
                self._see(pod)
            stream = self.core.list_namespaced_pod(
                self.ns,
                label_selector=self.SELECTOR,
                watch=True,
                resource_version=listed["metadata"]["resourceVersion"],
                timeout_seconds=60,
                _preload_content=False,
            )
            for line in stream:
                event = json.loads(line)
                if event["type"] == "ERROR":
                    break
                if event["type"] == "DELETED":
                    self.ready.discard(event["object"]["metadata"]["name"])
                else:
                    self._see(event["object"])
                if self.done.is_set():
                    break

    def wait(self, n: int, start: float, timeout: float = 1800) -> float:
        """Seconds from `start` until n pods are Ready."""
        while time.monotonic() - start < timeout:
            if len(self.ready) >= n:
                self.done.set()
                return time.monotonic() - start
            time.sleep(0.1)
        raise SystemExit(f"{len(self.ready)}/{n} pods Ready in {self.ns} after {timeout:.0f} s")


async def apply_floor(
    kubeconfig: Path, ns: str, n: int, regions: list[Region], where: list[Region], workers: int, uid: str
) -> None:
    """Server-side apply every model's children, `workers` models at a time, as the operator does."""
    cfg = aclient.Configuration()
    await aconfig.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    api = aclient.ApiClient(cfg)
    kube = Kube(api)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            md = ModelDeployment.model_validate(
                {"metadata": {"name": f"m{i}", "namespace": ns, "uid": uid}, "spec": spec(i, where)}
            )
            for obj in children(md, plan(md.spec, regions, Observed()), Settings()):
                obj["metadata"]["ownerReferences"] = [
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}
                ]
                await kube.apply(obj)

    try:
        await asyncio.gather(*(worker() for _ in range(workers)))
    finally:
        await api.close()


def floor_phase(
    api: client.ApiClient,
    kubeconfig: Path,
    ns: str,
    n: int,
    regions: list[Region],
    where: list[Region],
    pids: dict[str, int],
) -> dict[str, Any]:
    core = client.CoreV1Api(api)
    fresh_namespace(core, ns)
    owner = core.create_namespaced_config_map(ns, {"metadata": {"name": "owner"}})
    ready = ReadyPods(core, ns)
    ready.start()
    meter = CpuMeter({**pids, "bench": os.getpid()})
    start = time.monotonic()
    asyncio.run(
        apply_floor(kubeconfig, ns, n, regions, where, Settings().max_concurrent_reconciles, str(owner.metadata.uid))
    )
    applied = time.monotonic() - start
    seconds = ready.wait(n, start)
    return {"seconds": seconds, "applied_seconds": round(applied, 1), "cpu_seconds": meter.stop()}


def meridian_phase(
    api: client.ApiClient,
    kubeconfig: Path,
    ns: str,
    n: int,
    where: list[Region],
    log: Path,
    audit_log: Path,
    pids: dict[str, int],
) -> dict[str, Any]:
    core, co = client.CoreV1Api(api), client.CustomObjectsApi(api)
    fresh_namespace(core, ns)
    op = start_operator(kubeconfig, log)
    sampler = Sampler(op.proc.pid)
    try:
        until = time.monotonic() + 120
        while "caches synced" not in log.read_text(errors="replace"):
            if time.monotonic() > until:
                raise SystemExit(f"operator caches never synced:\n{op.log_tail()}")
            time.sleep(0.2)
        idle = rss_mib(op.proc.pid)
        sampler.start()
        ready = ReadyPods(core, ns)
        ready.start()
        meter = CpuMeter({**pids, "bench": os.getpid(), "operator": op.proc.pid})
        wall0, start = time.time(), time.monotonic()
        for i in range(n):
            body = {
                "apiVersion": "serving.meridian.dev/v1alpha1",
                "kind": "ModelDeployment",
                "metadata": {"name": f"m{i}"},
            }
            co.create_namespaced_custom_object(
                "serving.meridian.dev", "v1alpha1", ns, "modeldeployments", {**body, "spec": spec(i, where)}
            )
        created = time.monotonic() - start
        seconds = ready.wait(n, start)
        cpu = meter.stop()
        reconciles = sum(op.metric("meridian_reconciles_total").values())
        wall1 = time.time()
        peak = sampler.peak
        settled = wait_quiet(op)  # the last status writes land before the steady window opens
        steady0 = time.time()
        time.sleep(STEADY_SECONDS)
        steady1 = time.time()
        time.sleep(2)  # the audit log is written as requests complete
        at_rest = rss_mib(op.proc.pid)
        converging = audit.read(audit_log, wall0, wall1)
        steady = audit.read(audit_log, steady0, steady1)
        return {
            "seconds": seconds,
            "created_seconds": round(created, 1),
            "quiet_after_ready_seconds": round(settled, 1),
            "cpu_seconds": cpu,
            "reconciles_per_model": round(reconciles / n, 2),
            "rss_idle_mib": round(idle, 1),
            "rss_peak_mib": round(max(peak, at_rest), 1),
            "rss_at_rest_mib": round(at_rest, 1),
            "requests_per_model": {k: round(v / n, 2) for k, v in audit.summary(converging).items()},
            "converging_by_verb_resource": {f"{v} {r}": c for (v, r), c in sorted(converging.items())},
            "steady_per_minute": {k: round(v * 60 / STEADY_SECONDS, 1) for k, v in audit.summary(steady).items()},
            "steady_by_verb_resource": {f"{v} {r}": c for (v, r), c in sorted(steady.items()) if v != "watch"},
        }
    finally:
        sampler.done.set()
        stop_operator(op)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--fleet", type=Path, default=REPO / "examples" / "fleets" / "cloud-46.yaml")
    args = ap.parse_args()
    fleet = fleetmod.load_fleet(args.fleet)
    with tempfile.TemporaryDirectory() as tmp:
        cp = controlplane.ControlPlane(Path(tmp), binaries.locate(), die_with_parent=True)
        kubeconfig = cp.start()
        try:
            pids = {rec.name: rec.pid for rec in cp.processes}
            run(args, fleet, kubeconfig, Path(tmp), cp.audit_log, pids)
        finally:
            cp.stop()


def run(
    args: argparse.Namespace,
    fleet: fleetmod.Fleet,
    kubeconfig: Path,
    tmp: Path,
    audit_log: Path,
    pids: dict[str, int],
) -> None:
    api = cluster.api_client(kubeconfig)
    cluster.apply_fleet(api, fleet, REPO / "crds")
    regions = sorted((Region.model_validate(r) for r in fleetmod.region_manifests(fleet)), key=lambda r: r.name)
    where = assign(fleet, regions, args.n)
    core = client.CoreV1Api(api)
    floors: list[dict[str, Any]] = []
    operators: list[dict[str, Any]] = []
    for rep in range(args.reps):
        order = ["floor", "meridian"] if rep % 2 == 0 else ["meridian", "floor"]
        for phase in order:
            ns = f"bench-{phase}-{rep}"
            if phase == "floor":
                floors.append(floor_phase(api, kubeconfig, ns, args.n, regions, where, pids))
                emit(rep=rep, phase="floor", n=args.n, **{**floors[-1], "seconds": round(floors[-1]["seconds"], 1)})
            else:
                result = meridian_phase(
                    api, kubeconfig, ns, args.n, where, tmp / f"operator-{rep}.log", audit_log, pids
                )
                operators.append(result)
                emit(rep=rep, phase="meridian", n=args.n, **{**result, "seconds": round(result["seconds"], 1)})
            emit(rep=rep, phase=phase, deleted_seconds=round(delete_and_wait(core, ns), 1))
    floor, meridian = (
        statistics.median(f["seconds"] for f in floors),
        statistics.median(o["seconds"] for o in operators),
    )
    emit(
        summary=True,
        n=args.n,
        reps=args.reps,
        floor_median_seconds=round(floor, 1),
        floor_cpu_seconds_median=statistics.median(sum(f["cpu_seconds"].values()) for f in floors),
        meridian_cpu_seconds_median=statistics.median(sum(o["cpu_seconds"].values()) for o in operators),
        operator_cpu_seconds_median=statistics.median(o["cpu_seconds"]["operator"] for o in operators),
        meridian_median_seconds=round(meridian, 1),
        ratio_meridian_vs_floor=round(meridian / floor, 2),
        rss_peak_mib_median=statistics.median(o["rss_peak_mib"] for o in operators),
        rss_at_rest_mib_median=statistics.median(o["rss_at_rest_mib"] for o in operators),
        steady_lists_per_minute_max=max(o["steady_per_minute"]["list"] for o in operators),
        steady_writes_per_minute_max=max(o["steady_per_minute"]["write"] for o in operators),
    )


if __name__ == "__main__":
    main()
