"""`meridian plan`: the placement table and JSON for CI, from a fleet file, Region documents or a cluster."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from meridian.cli import main
from meridian.placement.fleet import regions_from_fleet
from meridian.sim.fleet import load_fleet

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
EU_FLEET = ROOT / "examples" / "fleets" / "eu.yaml"
TEST_FLEET = ROOT / "examples" / "fleets" / "test.yaml"
LLAMA = ROOT / "examples" / "llama-3-8b.yaml"


def model(
    name: str, replicas: int = 2, tp: int = 1, products: list[str] | None = None, **placement: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "serving.meridian.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": "bank"},
        "spec": {
            "model": {"format": "onnx", "storageUri": "s3://models/m"},
            "runtime": {"tensorParallelSize": tp},
            "resources": {"gpu": {"products": products or []}},
            "replicas": replicas,
            "placement": placement,
        },
    }


def write(tmp_path: Path, *docs: dict[str, Any]) -> Path:
    path = tmp_path / "md.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return path


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, Any]]]:
    code = main(["plan", *args, "-o", "json"])
    return code, [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_table_shows_every_region_with_its_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "-f", str(LLAMA), "--fleet", str(EU_FLEET)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["MODELDEPLOYMENT", "REGION", "REPLICAS", "REASON"]
    assert lines[1].split()[:4] == ["default/llama-3-8b", "gra", "2", "weight"]
    assert "weight 2 of 3, minReplicas 1" in lines[1]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert rows["eri"].split()[1] == "-" and rows["eri"].endswith("lacks jurisdiction EU")
    assert rows["bhs"].endswith("lacks jurisdiction EU")
    assert rows["rbx"].split()[1:] == ["1", "weight", "1", "of", "3"]
    assert rows["par"].endswith("not in spec.placement.regions")


def test_json_is_one_object_per_model_deployment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    md = write(tmp_path, model("a", 3, residency=["EU"]), model("b", 1, regions=[{"name": "eri"}]))
    code, out = run_json(capsys, "-f", str(md), "--fleet", str(TEST_FLEET))
    assert code == 0
    assert [o["name"] for o in out] == ["a", "b"]
    assert out[0]["regions"] == [
        {"name": "gra", "replicas": 1, "reason": "weight 1 of 3"},
        {"name": "lim", "replicas": 1, "reason": "weight 1 of 3"},
        {"name": "rbx", "replicas": 1, "reason": "weight 1 of 3"},
    ]
    assert out[0]["excluded"] == [{"name": "eri", "reason": "lacks jurisdiction EU"}]
    assert out[0]["satisfied"] is True and "problems" not in out[0]
    assert out[1]["regions"] == [{"name": "eri", "replicas": 1, "reason": "weight 1 of 1"}]


def test_stalled_models_exit_1_with_the_missing_jurisdiction_or_product(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    md = write(tmp_path, model("swiss", residency=["CH"]), model("h200", products=["H200"]), model("ok"))
    code, out = run_json(capsys, "-f", str(md), "--fleet", str(TEST_FLEET))
    assert code == 1
    by_name = {o["name"]: o for o in out}
    assert by_name["swiss"]["problems"] == [
        {"reason": "NoQualifyingRegion", "message": "no region carries jurisdiction CH"}
    ]
    assert by_name["swiss"]["regions"] == []
    assert by_name["h200"]["problems"][0]["reason"] == "NoGpuProduct"
    assert "GPU product H200" in by_name["h200"]["problems"][0]["message"]
    assert "problems" not in by_name["ok"]

    assert main(["plan", "-f", str(md), "--fleet", str(TEST_FLEET)]) == 1
    table = capsys.readouterr().out
    assert "STALLED NoQualifyingRegion: no region carries jurisdiction CH" in table


def test_a_product_in_one_region_only_pins_the_model_there(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    md = write(tmp_path, model("h100", 4, tp=2, products=["H100-80GB-HBM3"], residency=["EU"]))
    code, out = run_json(capsys, "-f", str(md), "--fleet", str(EU_FLEET))
    assert code == 0
    assert [(r["name"], r["replicas"]) for r in out[0]["regions"]] == [("gra", 4)]
    assert {"name": "rbx", "reason": "has no GPU product H100-80GB-HBM3"} in out[0]["excluded"]


def test_fleet_capacity_bounds_the_split_and_spills(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A100 with TP 8 in the EU: gra fits 4, rbx 6, par 8, lim 2; an even split of 20 is 5 each
    md = write(tmp_path, model("big", 20, tp=8, products=["A100-SXM4-80GB"], residency=["EU"]))
    code, out = run_json(capsys, "-f", str(md), "--fleet", str(EU_FLEET))
    assert code == 0
    got = {r["name"]: r for r in out[0]["regions"]}
    assert {n: r["replicas"] for n, r in got.items()} == {"gra": 4, "lim": 2, "par": 8, "rbx": 6}
    assert got["lim"]["reason"] == "weight 1 of 4; capped by capacity: 16 free GPUs / 8 per replica"
    assert "spill from gra: capped by capacity: 32 free GPUs / 8 per replica" in got["par"]["reason"]
    assert out[0]["satisfied"] is False  # 4 replicas are displaced from their weighted share

    md = write(tmp_path, model("bigger", 21, tp=8, products=["A100-SXM4-80GB"], residency=["EU"]))
    code, out = run_json(capsys, "-f", str(md), "--fleet", str(EU_FLEET))
    assert code == 0
    assert "1 replica beyond known capacity; they wait for capacity" in out[0]["message"]


def test_fleet_becomes_regions_with_capacity() -> None:
    regions = {r.name: r for r in regions_from_fleet(load_fleet(EU_FLEET))}
    gra = regions["gra"]
    assert gra.spec.jurisdictions == ["EU", "EEA", "FR"]
    assert gra.node_selector == {"node-restriction.kubernetes.io/region": "gra"}
    assert gra.status.nodes == 19
    assert {(g.product, g.capacity, g.allocatable, g.requested) for g in gra.status.gpus} == {
        ("A100-SXM4-80GB", 32, 32, 0),
        ("H100-80GB-HBM3", 96, 96, 0),
    }
    assert gra.status.total_gpus == gra.status.free_gpus == 128
    assert {g.memory_mi_b for g in gra.status.gpus} == {81920, 81559}


def test_region_documents_in_the_file_need_no_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    region = {
        "apiVersion": "serving.meridian.dev/v1alpha1",
        "kind": "Region",
        "metadata": {"name": "zrh"},
        "spec": {"country": "CH", "jurisdictions": ["CH"]},
    }
    md = write(tmp_path, model("swiss", residency=["CH"]), region)
    code, out = run_json(capsys, "-f", str(md))
    assert code == 0
    assert out[0]["regions"][0]["name"] == "zrh"
    assert "capacity unknown" in out[0]["regions"][0]["reason"]
    # with a fleet too, the file's Regions are added to (and override) the fleet's
    code, out = run_json(capsys, "-f", str(md), "--fleet", str(TEST_FLEET))
    assert code == 0 and out[0]["regions"][0]["name"] == "zrh"


def test_input_errors_exit_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["plan", "-f", str(tmp_path / "missing.yaml"), "--fleet", str(TEST_FLEET)]) == 2
    assert "missing.yaml" in capsys.readouterr().err
    empty = tmp_path / "empty.yaml"
    empty.write_text("kind: ConfigMap\n")
    assert main(["plan", "-f", str(empty), "--fleet", str(TEST_FLEET)]) == 2
    assert "no ModelDeployment found" in capsys.readouterr().err
    assert main(["plan", "-f", str(LLAMA), "--fleet", str(tmp_path / "nofleet.yaml")]) == 2
    assert "nofleet.yaml" in capsys.readouterr().err

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert main(["plan", "-f", str(LLAMA)]) == 2
    assert "pass --fleet to plan without one" in capsys.readouterr().err
