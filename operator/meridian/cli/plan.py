"""`meridian plan -f md.yaml [--fleet F] [-o table|json]`: the placement, with reasons; applies nothing.

Regions come from the fleet file (with the capacity its node pools give), else from Region
documents in the input, else from the current cluster (KUBECONFIG). Exit code 1 when any
ModelDeployment is stalled, so CI can gate on it; 2 when the input cannot be read.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml
from pydantic import ValidationError

from meridian import GROUP, VERSION
from meridian.api.modeldeployment import ModelDeployment
from meridian.api.region import Region
from meridian.cli.render import load_documents, split_documents
from meridian.placement.plan import Observed, Plan, plan


class InputError(Exception):
    """The files or the cluster could not give ModelDeployments or Regions; the message says which."""


def fleet_regions(path: Path) -> list[Region]:
    from meridian.placement.fleet import regions_from_fleet
    from meridian.sim.fleet import load_fleet

    try:
        return regions_from_fleet(load_fleet(path))
    except (OSError, ValueError, yaml.YAMLError) as e:  # pydantic's ValidationError is a ValueError
        raise InputError(f"fleet {path}: {e}") from e


def cluster_regions() -> list[Region]:
    """Regions of the cluster KUBECONFIG (or the in-cluster service account) points at."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    loader: Any = config  # the sync client is untyped
    try:
        try:
            loader.load_kube_config()
        except ConfigException:
            loader.load_incluster_config()
        api: Any = client.CustomObjectsApi()
        found = api.list_cluster_custom_object(GROUP, VERSION, "regions")
    except Exception as e:  # any failure here means "no cluster to ask": say so and how to avoid it
        raise InputError(f"cannot list Regions from the cluster ({e}); pass --fleet to plan without one") from e
    return [Region.model_validate(item) for item in found.get("items", [])]


def load_inputs(filename: Path, fleet: Path | None) -> tuple[list[ModelDeployment], list[Region]]:
    try:
        mds, in_file = split_documents(load_documents(filename))
    except (OSError, yaml.YAMLError, ValidationError) as e:
        raise InputError(f"{filename}: {e}") from e
    if not mds:
        raise InputError(f"{filename}: no ModelDeployment found")
    if fleet is not None:
        base = fleet_regions(fleet)
    elif in_file:
        base = []
    else:
        base = cluster_regions()
    merged = {r.name: r for r in base} | {r.name: r for r in in_file}  # documents in the file win
    return mds, [merged[n] for n in sorted(merged)]


def as_json(md: ModelDeployment, p: Plan) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": md.metadata.name,
        "namespace": md.metadata.namespace,
        "total": p.total,
        "regions": [{"name": t.region, "replicas": t.replicas, "reason": t.reason} for t in p.targets],
        "excluded": [{"name": e.region, "reason": e.reason} for e in p.excluded],
        "satisfied": p.satisfied,
        "message": p.message,
    }
    if p.stalled:
        out["problems"] = [{"reason": x.reason, "message": x.message} for x in p.problems]
    return out


def table_rows(md: ModelDeployment, p: Plan) -> list[tuple[str, str, str, str]]:
    """One row per region (planned, then excluded), and one for a problem or an unmet placement."""
    name = f"{md.metadata.namespace}/{md.metadata.name}"
    rows = [(t.region, str(t.replicas), t.reason) for t in p.targets]
    rows += [(e.region, "-", e.reason) for e in p.excluded]
    rows += [("-", "-", f"STALLED {x.reason}: {x.message}") for x in p.problems]
    if not p.stalled and not p.satisfied:
        rows.append(("-", "-", f"PlacementSatisfied=False: {p.message}"))
    return [(name if i == 0 else "", *row) for i, row in enumerate(rows)]


def print_table(results: Sequence[tuple[ModelDeployment, Plan]], out: TextIO) -> None:
    rows = [("MODELDEPLOYMENT", "REGION", "REPLICAS", "REASON")]
    for md, p in results:
        rows += table_rows(md, p)
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        out.write("   ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "   " + row[3] + "\n")


def plan_command(filename: Path, fleet: Path | None, output: str) -> int:
    try:
        mds, regions = load_inputs(filename, fleet)
    except InputError as e:
        print(f"meridian plan: {e}", file=sys.stderr)
        return 2
    results = [(md, plan(md.spec, regions, Observed())) for md in mds]
    if output == "json":
        for md, p in results:
            sys.stdout.write(json.dumps(as_json(md, p), sort_keys=False) + "\n")
    else:
        print_table(results, sys.stdout)
    return 1 if any(p.stalled for _, p in results) else 0
