"""The fleet as one member cluster per region behind a Karmada control plane (fleet topology `clusters`).

Karmada's API server is where users and Meridian work: it holds the CRDs, the Region objects (each
naming its member cluster) and the ModelDeployments. Each region's nodes run in a control plane of
its own under workdir/members/<region>, joined to Karmada as a Push-mode Cluster labelled with the
region's country and jurisdictions, which PropagationPolicies select on.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from meridian import log
from meridian.render import reach
from meridian.sim import binaries, cluster, karmada, state
from meridian.sim import fleet as fleetmod
from meridian.sim.controlplane import ControlPlane, stop_processes

MEMBERS_DIR = "members"


def _log() -> Any:
    return log.get("meridian.sim")


def pod_cidr(index: int) -> str:
    """Each member's pods get loopback addresses of their own (single clusters use 127.40-42/16)."""
    return f"127.{50 + index}.0.0/16"


def member_workdir(workdir: Path, region: str) -> Path:
    return workdir / MEMBERS_DIR / region


def start(
    spec: fleetmod.Fleet, workdir: Path, crd_dir: Path | None, die_with_parent: bool = False, timeout: float = 120.0
) -> tuple[karmada.Karmada, list[ControlPlane]]:
    """Karmada at workdir, a member per region, joined and Ready; CRDs and Regions in Karmada.

    On failure everything started is stopped again.
    """
    t0 = time.monotonic()
    bins = binaries.ensure()
    plane = karmada.Karmada(workdir, die_with_parent=die_with_parent)
    kubeconfig = plane.start(timeout)
    members: list[ControlPlane] = []
    try:
        kapi = cluster.api_client(kubeconfig)
        for i, region in enumerate(spec.regions):
            cp = ControlPlane(
                member_workdir(workdir, region.name), bins, die_with_parent=die_with_parent, pod_cidr=pod_cidr(i)
            )
            members.append(cp)
            _record_members(workdir, members)
            cp.start(timeout)
            api = cluster.api_client(cp.kubeconfig)
            try:
                cluster.apply_fleet(api, fleetmod.region_fleet(spec, region.name), None, timeout)
            finally:
                api.close()  # type: ignore[no-untyped-call]
            labels = reach.jurisdiction_labels(region.country, list(region.jurisdictions))
            karmada.join(kapi, karmada.Member(region.name, cp, region.name, list(region.zones), labels))
        karmada.wait_clusters_ready(kapi, [r.name for r in spec.regions], timeout)
        cluster.apply_fleet(kapi, fleetmod.Fleet(topology=spec.topology, regions=spec.regions), crd_dir, timeout)
        kapi.close()  # type: ignore[no-untyped-call]
    except BaseException:
        stop(workdir)
        raise
    _log().info("karmada fleet ready", members=[r.name for r in spec.regions], seconds=round(time.monotonic() - t0, 2))
    return plane, members


def _record_members(workdir: Path, members: list[ControlPlane]) -> None:
    st = state.load(workdir)
    if st is not None:
        st.members = [str(m.workdir) for m in members]
        state.save(workdir, st)


def stop(workdir: Path) -> bool:
    """Stop every member recorded in workdir's state, then Karmada; True when nothing is left running."""
    st = state.load(workdir)
    if st is None:
        return True
    ok = True
    for m in reversed(st.members):
        member = state.load(Path(m))
        if member is not None:
            stopped = stop_processes(member.processes)
            if stopped:
                state.remove(Path(m))
            ok = ok and stopped
    stopped = stop_processes(st.processes)
    if stopped and ok:
        state.remove(workdir)
    return ok and stopped
