"""Fleet files: validation with clear errors, and the nodes and Regions they become."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from meridian.sim import fleet as fm

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "fleets"


def _fleet(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "regions": [
            {"name": "gra", "country": "FR", "jurisdictions": ["EU", "EEA", "FR"], "zones": ["gra-a", "gra-b"]},
            {"name": "eri", "country": "GB", "jurisdictions": ["UK"]},
        ],
        "nodePools": [
            {"region": "gra", "zone": "gra-b", "count": 2, "gpuProduct": "H100-80GB-HBM3", "gpusPerNode": 8},
            {"region": "eri", "count": 1, "cpu": "16", "memory": "64Gi"},
        ],
    }
    base.update(overrides)
    return base


def test_pool_with_unknown_region_is_rejected() -> None:
    data = _fleet(nodePools=[{"region": "xyz", "count": 1}])
    with pytest.raises(ValidationError, match=r"nodePools\[0\]: unknown region 'xyz' \(regions: eri, gra\)"):
        fm.Fleet.model_validate(data)


def test_pool_with_zone_of_another_region_is_rejected() -> None:
    data = _fleet(nodePools=[{"region": "gra", "zone": "eri-a", "count": 1}])
    with pytest.raises(ValidationError, match="zone 'eri-a' is not a zone of region gra"):
        fm.Fleet.model_validate(data)


def test_zone_required_when_region_has_several() -> None:
    data = _fleet(nodePools=[{"region": "gra", "count": 1}])
    with pytest.raises(ValidationError, match="set zone to one of them"):
        fm.Fleet.model_validate(data)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"country": "France"}, "ISO 3166-1 alpha-2"),
        ({"name": "Gra_1"}, "must be a DNS label"),
        ({"jurisdictions": ["EU", "EU"]}, "jurisdiction twice"),
        ({"zones": ["gra-a", "gra-a"]}, "zone twice"),
        ({"colour": "blue"}, "Extra inputs are not permitted"),
    ],
)
def test_region_field_errors(change: dict[str, Any], message: str) -> None:
    regions = [{"name": "gra", "country": "FR", "jurisdictions": ["EU"], "zones": ["gra-a"]} | change]
    with pytest.raises(ValidationError, match=message):
        fm.Fleet.model_validate({"regions": regions})


def test_duplicate_region_and_pool_names_are_rejected() -> None:
    r = {"name": "gra", "country": "FR"}
    with pytest.raises(ValidationError, match="region defined more than once: gra"):
        fm.Fleet.model_validate({"regions": [r, r]})
    pool = {"region": "gra", "count": 1, "gpuProduct": "L4", "gpusPerNode": 1}
    with pytest.raises(ValidationError, match="distinct `name`s"):
        fm.Fleet.model_validate({"regions": [r], "nodePools": [pool, pool]})


def test_gpu_fields_must_agree() -> None:
    r = [{"name": "gra", "country": "FR"}]
    with pytest.raises(ValidationError, match="gpusPerNode but no gpuProduct"):
        fm.Fleet.model_validate({"regions": r, "nodePools": [{"region": "gra", "count": 1, "gpusPerNode": 8}]})
    unknown = {"region": "gra", "count": 1, "gpuProduct": "MI300X", "gpusPerNode": 8}
    with pytest.raises(ValidationError, match="gpuMemoryMiB is required for GPU product 'MI300X'"):
        fm.Fleet.model_validate({"regions": r, "nodePools": [unknown]})
    with pytest.raises(ValidationError, match="not a Kubernetes quantity"):
        fm.Fleet.model_validate({"regions": r, "nodePools": [{"region": "gra", "count": 1, "memory": "lots"}]})


def test_gpu_node_labels_capacity_and_taint() -> None:
    nodes = fm.node_manifests(fm.Fleet.model_validate(_fleet()))
    assert [n["metadata"]["name"] for n in nodes] == ["gra-b-h100-0", "gra-b-h100-1", "eri-a-cpu-0"]
    gpu = nodes[0]
    assert gpu["metadata"]["annotations"] == {"kwok.x-k8s.io/node": "fake"}
    labels = gpu["metadata"]["labels"]
    assert labels["type"] == "kwok"
    assert labels["topology.kubernetes.io/region"] == "gra"
    assert labels["node-restriction.kubernetes.io/region"] == "gra"  # the one Regions select by
    assert labels["topology.kubernetes.io/zone"] == "gra-b"
    assert labels["kubernetes.io/hostname"] == "gra-b-h100-0"
    assert labels["kubernetes.io/os"] == "linux"
    assert labels["nvidia.com/gpu.product"] == "H100-80GB-HBM3"
    assert labels["nvidia.com/gpu.memory"] == "81559"
    assert labels["nvidia.com/gpu.count"] == "8"
    assert labels["nvidia.com/gpu.present"] == "true"
    assert gpu["status"]["capacity"] == {"cpu": "64", "memory": "512Gi", "pods": "110", "nvidia.com/gpu": "8"}
    assert gpu["status"]["allocatable"] == gpu["status"]["capacity"]
    assert gpu["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    ips = {n["status"]["addresses"][0]["address"] for n in nodes}
    assert len(ips) == len(nodes)


def test_cpu_node_has_no_gpu_labels_or_taint() -> None:
    cpu = fm.node_manifests(fm.Fleet.model_validate(_fleet()))[2]
    assert not any(k.startswith("nvidia.com/") for k in cpu["metadata"]["labels"])
    assert "nvidia.com/gpu" not in cpu["status"]["capacity"]
    assert cpu["status"]["capacity"]["cpu"] == "16"
    assert "taints" not in cpu["spec"]


def test_taints_and_labels_per_pool() -> None:
    pools = [
        {"name": "big", "region": "gra", "zone": "gra-a", "count": 1, "gpuProduct": "L4", "gpusPerNode": 1,
         "taints": [], "labels": {"team": "ml"}},
        {"name": "spot", "region": "gra", "zone": "gra-a", "count": 1, "gpuProduct": "L4", "gpusPerNode": 1,
         "taints": [{"key": "spot", "value": "true", "effect": "NoExecute"}]},
    ]  # fmt: skip
    nodes = fm.node_manifests(fm.Fleet.model_validate(_fleet(nodePools=pools)))
    assert "taints" not in nodes[0]["spec"]
    assert nodes[0]["metadata"]["labels"]["team"] == "ml"
    assert nodes[1]["spec"]["taints"] == [{"key": "spot", "value": "true", "effect": "NoExecute"}]


def test_region_manifests() -> None:
    regions = fm.region_manifests(fm.Fleet.model_validate(_fleet()))
    assert regions[0] == {
        "apiVersion": "serving.meridian.dev/v1alpha1",
        "kind": "Region",
        "metadata": {"name": "gra"},
        "spec": {
            "displayName": "gra",
            "country": "FR",
            "jurisdictions": ["EU", "EEA", "FR"],
            "nodeSelector": {"node-restriction.kubernetes.io/region": "gra"},
            "cordoned": False,
        },
    }


def test_eu_example_fleet() -> None:
    eu = fm.load_fleet(EXAMPLES / "eu.yaml")
    by_name = {r.name: r for r in eu.regions}
    assert {"gra", "rbx", "sbg", "par", "lim", "waw", "eri", "bhs"} <= set(by_name)
    assert len(by_name["par"].zones) == 3
    for eu_region in ("gra", "rbx", "sbg", "par", "lim", "waw"):
        j = by_name[eu_region].jurisdictions
        assert {"EU", "EEA", by_name[eu_region].country} <= set(j)
    assert "EU" not in by_name["eri"].jurisdictions
    assert by_name["bhs"].country == "CA"
    h100_regions = {p.region for p in eu.node_pools if p.gpu_product == "H100-80GB-HBM3"}
    assert h100_regions == {"gra"}
    assert 60 <= eu.node_count() <= 100
    assert len(fm.node_manifests(eu)) == eu.node_count()


def test_cloud_46_example_fleet() -> None:
    cloud = fm.load_fleet(EXAMPLES / "cloud-46.yaml")
    assert len(cloud.regions) == 46
    by_country: dict[str, set[str]] = {}
    for r in cloud.regions:
        by_country.setdefault(r.country, set()).update(r.jurisdictions)
    assert {"FR", "DE", "PL", "GB", "CA", "US", "JP", "SG", "AU", "NO", "CH"} <= set(by_country)
    assert "EU" in by_country["DE"] and "EU" not in by_country["GB"] and "EU" not in by_country["NO"]
    assert by_country["NO"] == {"EEA", "NO"}  # quoted in the file: a bare NO is YAML 1.1's false
    products = {p.gpu_product for p in cloud.node_pools}
    assert {"L4", "L40S", "A100-SXM4-80GB", "H100-80GB-HBM3", "H200-141GB-HBM3e", "B200"} <= products
    assert cloud.node_count() <= 200  # runs under kwok on this machine


def test_test_example_fleet() -> None:
    t = fm.load_fleet(EXAMPLES / "test.yaml")
    assert [r.name for r in t.regions] == ["gra", "rbx", "lim", "eri"]
    gra_zones = {p.zone for p in t.node_pools if p.gpu_product == "H100-80GB-HBM3"}
    assert gra_zones == {"gra-a", "gra-b"}
    assert t.node_count() <= 15


def test_describe_names_each_field() -> None:
    data = {"regions": [{"name": "a", "country": "France"}], "nodePools": [{"region": "a", "count": 1, "gpus": 2}]}
    with pytest.raises(ValidationError) as err:
        fm.Fleet.model_validate(data)
    assert fm.describe(err.value) == (
        "regions.0.country: country 'France' must be an ISO 3166-1 alpha-2 code such as FR; "
        "nodePools.0.gpus: Extra inputs are not permitted"
    )
