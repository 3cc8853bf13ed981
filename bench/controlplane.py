"""Benchmark of the local control plane: build time, `sim up` time to all nodes Ready, memory at rest.

Prints one JSON object per line: {"metric": ..., "value": ..., "unit": ..., ...}.

  python bench/controlplane.py            warm: no-op build, then sim up of the EU fleet
  python bench/controlplane.py --cold     build every binary from scratch into a temporary
                                          MERIDIAN_CACHE_DIR and GOCACHE (modules already downloaded
                                          stay in GOMODCACHE), then use those binaries
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def emit(metric: str, value: float, unit: str, **extra: Any) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 2), "unit": unit, **extra}), flush=True)


def build(env: dict[str, str]) -> float:
    t0 = time.monotonic()
    subprocess.run(
        [str(REPO / "hack" / "build-tools.sh"), "etcd", "kube", "kwok"],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cold", action="store_true", help="build all binaries from scratch first")
    p.add_argument("--fleet", type=Path, default=REPO / "examples" / "fleets" / "eu.yaml")
    p.add_argument("--settle", type=float, default=15.0, help="seconds at rest before measuring memory")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="meridian-bench-") as tmp:
        env = dict(os.environ)
        if args.cold:
            env["MERIDIAN_CACHE_DIR"] = str(Path(tmp) / "cache")
            env["GOCACHE"] = str(Path(tmp) / "gocache")
            os.environ["MERIDIAN_CACHE_DIR"] = env["MERIDIAN_CACHE_DIR"]
            os.environ.pop("MERIDIAN_BIN_DIR", None)
            emit("build_cold_seconds", build(env), "s", components="etcd,kube,kwok")
        else:
            emit("build_warm_seconds", build(env), "s", components="etcd,kube,kwok")

        # imported after MERIDIAN_CACHE_DIR is settled, so binaries are looked up in the right cache
        from meridian import log
        from meridian.sim import binaries, cluster, controlplane, processes
        from meridian.sim import fleet as fleetmod

        log.configure()
        emit("loadavg_1m_before", os.getloadavg()[0], "", cpus=os.cpu_count())

        spec = fleetmod.load_fleet(args.fleet)
        cp = controlplane.ControlPlane(Path(tmp) / "sim", binaries.locate(), die_with_parent=True)
        t0 = time.monotonic()
        kubeconfig = cp.start()
        t_cp = time.monotonic() - t0
        try:
            api = cluster.api_client(kubeconfig)
            cluster.apply_fleet(api, spec, REPO / "crds")
            t_total = time.monotonic() - t0
            emit("controlplane_ready_seconds", t_cp, "s")
            emit("sim_up_seconds", t_total, "s", fleet=args.fleet.name, nodes=spec.node_count())
            time.sleep(args.settle)
            total = 0.0
            for rec in cp.processes:
                rss = processes.rss_mib(rec.pid) or 0.0
                total += rss
                emit("rss_mib", rss, "MiB", component=rec.name)
            emit("rss_mib_total", total, "MiB", settle_seconds=args.settle)
            emit("loadavg_1m_after", os.getloadavg()[0], "")
            api.close()  # type: ignore[no-untyped-call]
        finally:
            t1 = time.monotonic()
            clean = cp.stop()
            emit("sim_down_seconds", time.monotonic() - t1, "s", clean=clean)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "operator"))
    sys.exit(main())
