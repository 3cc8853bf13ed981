"""`meridian render`: what would be applied, offline, for review in a GitOps pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tests.fixtures_cluster import REPO, TEST_FLEET

from meridian.cli import main
from meridian.render.names import regional_name

pytestmark = pytest.mark.unit


def test_render_prints_every_child_for_the_fleet(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "-f", str(REPO / "examples" / "llama-3-8b.yaml"), "--fleet", str(TEST_FLEET)]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    assert ("Deployment", regional_name("llama-3-8b", "gra")) in kinds
    assert ("ConfigMap", "llama-3-8b-model-repository") in kinds
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert sum(d["spec"]["replicas"] for d in deployments) == 3
    assert all(d["metadata"]["labels"]["serving.meridian.dev/region"] in {"gra", "rbx"} for d in deployments)


def test_render_of_a_model_with_no_qualifying_region_fails_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    md = {
        "apiVersion": "serving.meridian.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "swiss"},
        "spec": {"model": {"format": "onnx", "storageUri": "s3://m/x"}, "placement": {"residency": ["CH"]}},
    }
    path = tmp_path / "swiss.yaml"
    path.write_text(yaml.safe_dump(md))
    assert main(["render", "-f", str(path), "--fleet", str(TEST_FLEET)]) == 1
    assert "CH" in capsys.readouterr().err
