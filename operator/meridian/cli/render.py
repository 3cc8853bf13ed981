"""`meridian render -f md.yaml [--fleet F]`: the manifests Meridian would apply, for review in CI."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from meridian.api.modeldeployment import ModelDeployment
from meridian.api.region import Region
from meridian.config import Settings
from meridian.placement.plan import Observed, plan
from meridian.render.children import children


def load_documents(path: Path) -> list[dict[str, Any]]:
    files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    return [d for f in files for d in yaml.safe_load_all(f.read_text()) if isinstance(d, dict)]


def fleet_regions(fleet: Path | None) -> list[Region]:
    if fleet is None:
        return []
    from meridian.placement.fleet import regions_from_fleet
    from meridian.sim.fleet import load_fleet

    return regions_from_fleet(load_fleet(fleet))


def split_documents(docs: list[dict[str, Any]]) -> tuple[list[ModelDeployment], list[Region]]:
    mds = [ModelDeployment.model_validate(d) for d in docs if d.get("kind") == "ModelDeployment"]
    regions = [Region.model_validate(d) for d in docs if d.get("kind") == "Region"]
    for md in mds:
        md.metadata.namespace = md.metadata.namespace or "default"
    return mds, regions


def render_command(filename: Path, fleet: Path | None) -> int:
    mds, regions = split_documents(load_documents(filename))
    regions = regions or fleet_regions(fleet)
    out: list[dict[str, Any]] = []
    for md in mds:
        p = plan(md.spec, regions, Observed())
        if p.stalled:
            for problem in p.problems:
                print(f"{md.metadata.name}: {problem.reason}: {problem.message}", file=sys.stderr)
            return 1
        out.extend(children(md, p, Settings()))
    yaml.safe_dump_all(out, sys.stdout, sort_keys=False)
    return 0
