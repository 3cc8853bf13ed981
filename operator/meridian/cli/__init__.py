"""`meridian run | crds | render | plan | residency | sim ...`: the entry point users and the Makefile call."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from meridian import __version__


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="meridian",
        description="Serve LLMs on NVIDIA Triton across datacenters, placed by data-residency rules.",
    )
    p.add_argument("--version", action="version", version=f"meridian {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the operator against the current kubeconfig")
    run.add_argument("--namespace", "-n", action="append", default=None, help="watch only this namespace")
    run.add_argument("--metrics-port", type=int, default=None, help="port of the operator's /metrics")
    run.add_argument("--prometheus-url", default=None, help="Prometheus HTTP API for autoscaling")
    run.add_argument("--log-format", choices=["json", "console"], default=None)
    run.add_argument("--log-level", default=None)
    run.add_argument("--peering", default=None, help="kopf peering name for HA (one active replica)")

    crds = sub.add_parser("crds", help="print or write the CRDs generated from the API models")
    crds.add_argument("--out", type=Path, default=None, help="directory to write one YAML file per CRD")

    render = sub.add_parser("render", help="print the manifests Meridian would apply, with no cluster")
    render.add_argument("-f", "--filename", type=Path, required=True, help="ModelDeployment YAML")
    render.add_argument("--fleet", type=Path, default=None, help="fleet file supplying the Regions")

    plan = sub.add_parser("plan", help="print the placement plan with reasons; applies nothing")
    plan.add_argument("-f", "--filename", type=Path, required=True, help="ModelDeployment YAML")
    plan.add_argument(
        "--fleet",
        type=Path,
        default=None,
        help="fleet file (regions and capacity); default: Region documents in -f, else the current cluster",
    )
    plan.add_argument("-o", "--output", choices=["table", "json"], default="table")

    residency = sub.add_parser("residency", help="prove where Meridian-managed pods run")
    ressub = residency.add_subparsers(dest="residency_command", required=True, metavar="RESIDENCY_COMMAND")
    chk = ressub.add_parser(
        "check", help="every managed pod with its node, region and jurisdictions; exit 1 on any violation"
    )
    chk.add_argument("--namespace", "-n", default=None, help="only this namespace (default: all)")
    chk.add_argument("-o", "--output", choices=["table", "json"], default="table")

    sim = sub.add_parser("sim", help="the local control plane with a simulated GPU fleet")
    simsub = sim.add_subparsers(dest="sim_command", required=True, metavar="SIM_COMMAND")
    up = simsub.add_parser("up", help="start the control plane, create the fleet's nodes and Regions")
    up.add_argument("--fleet", type=Path, required=True)
    up.add_argument("--workdir", type=Path, default=Path(".meridian-sim"))
    up.add_argument("--foreground", action="store_true", help="stay attached; Ctrl-C stops everything")
    st = simsub.add_parser("status", help="show regions, nodes and free GPUs")
    st.add_argument("--workdir", type=Path, default=Path(".meridian-sim"))
    down = simsub.add_parser("down", help="stop every process the control plane started")
    down.add_argument("--workdir", type=Path, default=Path(".meridian-sim"))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        # kopf imports the synchronous Kubernetes client whenever it is installed, only to recognise
        # its model classes; the operator talks through kubernetes_asyncio and never hands kopf one,
        # so its process goes without those 40 MiB of generated models
        sys.modules.setdefault("kubernetes", None)  # type: ignore[arg-type]
        from meridian.reconcile.main import run

        return run(args)
    if args.command == "crds":
        from meridian.api.crdgen import write_or_print

        return write_or_print(args.out)
    if args.command == "render":
        from meridian.cli.render import render_command

        return render_command(args.filename, args.fleet)
    if args.command == "plan":
        from meridian.cli.plan import plan_command

        return plan_command(args.filename, args.fleet, args.output)
    if args.command == "residency":
        from meridian.cli.residency import residency_command

        return residency_command(args.namespace, args.output)
    if args.command == "sim":
        from meridian.sim import commands

        if args.sim_command == "up":
            return commands.up(args.fleet, args.workdir, foreground=args.foreground)
        if args.sim_command == "status":
            return commands.status(args.workdir)
        return commands.down(args.workdir)
    return 2
