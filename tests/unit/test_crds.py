"""The committed CRDs are exactly what the API models generate, and they are structural."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from meridian.api.crdgen import all_crds, dump

pytestmark = pytest.mark.unit
CRDS = Path(__file__).resolve().parents[2] / "crds"


@pytest.mark.parametrize("filename", sorted(all_crds()))
def test_committed_crd_matches_models(filename: str) -> None:
    committed = (CRDS / filename).read_text()
    assert committed == dump(all_crds()[filename]), f"crds/{filename} drifted from the models: run `make crds`"


def _walk(node: dict[str, Any], path: str) -> list[str]:
    """Every place that breaks the structural-schema rules or lacks a description."""
    problems = []
    if "$ref" in node or ("anyOf" in node and not node.get("x-kubernetes-int-or-string")):
        problems.append(f"{path}: non-structural construct")
    if (
        "type" not in node
        and not node.get("x-kubernetes-int-or-string")
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        problems.append(f"{path}: no type")
    for name, child in node.get("properties", {}).items():
        if "description" not in child and name not in ("apiVersion", "kind", "metadata"):
            problems.append(f"{path}.{name}: no description")
        problems += _walk(child, f"{path}.{name}")
    if "items" in node:
        problems += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        problems += _walk(node["additionalProperties"], f"{path}{{}}")
    return problems


@pytest.mark.parametrize("filename", sorted(all_crds()))
def test_schema_is_structural_and_documented(filename: str) -> None:
    schema = all_crds()[filename]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert _walk(schema, "") == []


def test_modeldeployment_crd_has_scale_and_status_subresources() -> None:
    crd = yaml.safe_load((CRDS / "serving.meridian.dev_modeldeployments.yaml").read_text())
    version = crd["spec"]["versions"][0]
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    assert crd["spec"]["names"]["shortNames"] == ["mdep"]
    assert [c["name"] for c in version["additionalPrinterColumns"]][:6] == [
        "Model",
        "Format",
        "Ready",
        "Replicas",
        "Desired",
        "Regions",
    ]


def test_region_is_cluster_scoped_with_short_name() -> None:
    crd = all_crds()["serving.meridian.dev_regions.yaml"]
    assert crd["spec"]["scope"] == "Cluster"
    assert crd["spec"]["names"]["shortNames"] == ["rgn"]
