"""`meridian sim up | status | down`: the functions cli.py calls. Logs go to stderr, tables to stdout."""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import pydantic
import structlog

from meridian import log
from meridian.sim import binaries, cluster, controlplane, members, processes, state
from meridian.sim import fleet as fleetmod


def _log() -> Any:
    """Looked up per call: a logger bound at import would miss a later log.configure()."""
    return log.get("meridian.sim")


def _ensure_logging() -> None:
    """JSON logs on stderr unless the embedding program has configured structlog already."""
    if not structlog.is_configured():
        log.configure()


def crd_dir() -> Path | None:
    """crds/ of the checkout, whose CRDs `sim up` installs so the cluster is ready for the operator."""
    root = binaries.repo_root()
    return root / "crds" if root is not None else None


def _region_table(kubeconfig: Path) -> str:
    api = cluster.api_client(kubeconfig)
    try:
        return cluster.format_table(cluster.region_table(api))
    finally:
        api.close()  # type: ignore[no-untyped-call]


def _print_ready(kubeconfig: Path, table: str | None = None) -> None:
    print(table if table is not None else _region_table(kubeconfig))
    print(f"export KUBECONFIG={kubeconfig}", flush=True)


def _running(st: state.State) -> bool:
    return bool(st.processes) and all(processes.alive(p) for p in st.processes)


def up(fleet: Path, workdir: Path, foreground: bool = False) -> int:
    """Start the control plane in workdir, create the fleet's nodes and Regions, print the region table.

    Running it again on a live workdir re-applies the fleet. With foreground, stay until Ctrl-C or
    SIGTERM, then stop everything.
    """
    _ensure_logging()
    workdir = workdir.resolve()
    try:
        spec = fleetmod.load_fleet(fleet)
    except pydantic.ValidationError as e:
        _log().error("invalid fleet file", fleet=str(fleet), error=fleetmod.describe(e))
        return 2
    except (OSError, ValueError) as e:
        _log().error("invalid fleet file", fleet=str(fleet), error=str(e))
        return 2

    if spec.topology == "clusters":
        return _up_clusters(spec, fleet, workdir, foreground)
    cp = controlplane.ControlPlane(workdir)
    old = state.load(workdir)
    started = False
    if old is not None and (old.existing_cluster or _running(old)):
        _log().info("control plane already running; applying the fleet", workdir=str(workdir))
        cp.state = old
        kubeconfig = Path(old.kubeconfig)
    else:
        try:
            if not controlplane.existing_cluster_requested():
                cp = controlplane.ControlPlane(workdir, binaries.ensure(), die_with_parent=foreground)
            kubeconfig = cp.start()
        except (binaries.BinariesMissing, controlplane.ControlPlaneError, subprocess.CalledProcessError, OSError) as e:
            _log().error("control plane failed to start", error=str(e))
            return 1
        started = True

    try:
        api = cluster.api_client(kubeconfig)
        try:
            cluster.apply_fleet(api, spec, crd_dir(), prune=True)
            cluster.apply_crd_dir(api, binaries.gateway_crds())  # so that spec.routing can be tried
        finally:
            api.close()  # type: ignore[no-untyped-call]
        st = state.load(workdir)
        if st is not None:
            st.fleet = str(fleet.resolve())
            state.save(workdir, st)
        _print_ready(kubeconfig)
    except Exception as e:
        _log().error("applying the fleet failed", error=str(e))
        if started:
            cp.stop()
        return 1

    if foreground:
        return _stay(cp)
    return 0


def _up_clusters(spec: fleetmod.Fleet, fleet: Path, workdir: Path, foreground: bool) -> int:
    """Karmada and one member cluster per region (fleet topology `clusters`); a live one is left as it is."""
    old = state.load(workdir)
    if old is not None and _running(old):
        _log().error("a control plane is already running here; run `meridian sim down` first", workdir=str(workdir))
        return 1
    try:
        plane, _ = members.start(spec, workdir, crd_dir(), die_with_parent=foreground)
        api = cluster.api_client(plane.kubeconfig)
        try:
            cluster.apply_crd_dir(api, binaries.gateway_crds())
        finally:
            api.close()  # type: ignore[no-untyped-call]
    except Exception as e:
        _log().error("the Karmada fleet failed to start", error=str(e))
        return 1
    st = state.load(workdir)
    if st is not None:
        st.fleet = str(fleet.resolve())
        state.save(workdir, st)
    _print_ready(plane.kubeconfig, _member_table(workdir))
    if foreground:
        return _stay(plane.host, workdir)
    return 0


def _member_table(workdir: Path) -> str:
    """The region table, read from each member cluster (Karmada's API server has no nodes)."""
    st = state.load(workdir)
    rows: list[cluster.RegionRow] = []
    for m in st.members if st else []:
        member = state.load(Path(m))
        if member is not None:
            api = cluster.api_client(Path(member.kubeconfig))
            try:
                rows += cluster.region_table(api)
            finally:
                api.close()  # type: ignore[no-untyped-call]
    return cluster.format_table(rows)


def _stay(cp: controlplane.ControlPlane, workdir: Path | None = None) -> int:
    """Block until SIGINT/SIGTERM (then stop all) or until a component dies (then stop all, fail)."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    rc = 0
    _log().info("running in the foreground; Ctrl-C stops the control plane")
    while not stop.wait(1.0):
        dead = [p.name for p in all_processes(cp.workdir) if not processes.alive(p)]
        if dead:
            _log().error("component exited", components=dead)
            rc = 1
            break
    if cp.state is not None and cp.state.existing_cluster:
        state.remove(cp.workdir)
        return rc
    ok = members.stop(cp.workdir) if workdir is not None else cp.stop()
    _log().info("control plane stopped", clean=ok)
    return rc if ok else 1


def all_processes(workdir: Path) -> list[processes.ProcessRecord]:
    """The processes recorded in workdir and in its member clusters' workdirs, if any."""
    st = state.load(workdir)
    if st is None:
        return []
    found = list(st.processes)
    for m in st.members:
        member = state.load(Path(m))
        found += [
            p.model_copy(update={"name": f"{Path(m).name}/{p.name}"}) for p in (member.processes if member else [])
        ]
    return found


def status(workdir: Path) -> int:
    """Print the processes of the control plane in workdir and the region table; 1 if anything is down."""
    _ensure_logging()
    workdir = workdir.resolve()
    st = state.load(workdir)
    if st is None:
        print(f"no control plane in {workdir}")
        return 1
    healthy = True
    if st.existing_cluster:
        print(f"existing cluster, kubeconfig {st.kubeconfig}")
    else:
        rows = [("COMPONENT", "PID", "STATE", "RSS(MiB)")]
        for p in all_processes(workdir):
            up_ = processes.alive(p)
            healthy = healthy and up_
            rss = processes.rss_mib(p.pid) if up_ else None
            rows.append((p.name, str(p.pid), "running" if up_ else "stopped", f"{rss:.0f}" if rss else "-"))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        print("\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows))
        print()
    if healthy:
        try:
            table = _member_table(workdir) if st.members else _region_table(Path(st.kubeconfig))
        except Exception as e:
            _log().error("API server not reachable", error=str(e))
            return 1
        _print_ready(Path(st.kubeconfig), table)
    return 0 if healthy else 1


def down(workdir: Path) -> int:
    """Stop every process recorded in workdir/state.json and check none is left; keeps logs and data."""
    _ensure_logging()
    workdir = workdir.resolve()
    st = state.load(workdir)
    if st is None:
        _log().info("nothing running", workdir=str(workdir))
        return 0
    if st.existing_cluster:
        state.remove(workdir)
        _log().info("existing cluster left untouched", kubeconfig=st.kubeconfig)
        return 0
    ok = members.stop(workdir)
    if ok:
        _log().info("control plane stopped", workdir=str(workdir), processes=len(st.processes), members=len(st.members))
        return 0
    _log().error("some processes could not be stopped; state.json kept", workdir=str(workdir))
    return 1
