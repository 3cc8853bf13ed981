"""What Meridian would apply for a ModelDeployment: the pod spec a GPU scheduler and Triton need."""

from __future__ import annotations

from typing import Any

import pytest

from meridian.api.modeldeployment import ModelDeployment
from meridian.api.region import Region
from meridian.config import Settings
from meridian.placement.plan import Observed, plan
from meridian.render.children import children
from meridian.render.names import regional_name

pytestmark = pytest.mark.unit

GRA, RBX = regional_name("m", "gra"), regional_name("m", "rbx")


def region(name: str, jurisdictions: list[str]) -> Region:
    return Region.model_validate(
        {"metadata": {"name": name}, "spec": {"country": "FR", "jurisdictions": jurisdictions}}
    )


REGIONS = [region("gra", ["EU", "FR"]), region("rbx", ["EU", "FR"]), region("eri", ["UK"])]


def model(**spec: Any) -> ModelDeployment:
    base: dict[str, Any] = {
        "model": {"format": "onnx", "storageUri": "s3://models/m"},
        "resources": {"gpu": {"products": ["H100-80GB-HBM3"], "minMemoryMiB": 80000}, "sharedMemory": "4Gi"},
        "replicas": 3,
        "placement": {"residency": ["EU"], "regions": [{"name": "gra", "weight": 2}, {"name": "rbx", "weight": 1}]},
    }
    base.update(spec)
    return ModelDeployment.model_validate({"metadata": {"name": "m", "namespace": "bank", "uid": "u-1"}, "spec": base})


def render(md: ModelDeployment) -> dict[tuple[str, str], dict[str, Any]]:
    p = plan(md.spec, REGIONS, Observed())
    assert not p.stalled
    return {(o["kind"], o["metadata"]["name"]): o for o in children(md, p, Settings())}


def test_one_deployment_and_service_per_region_plus_shared_children() -> None:
    objs = render(model())
    assert sorted(objs) == [
        ("ConfigMap", "m-model-repository"),
        ("Deployment", GRA),
        ("Deployment", RBX),
        ("PodDisruptionBudget", "m"),
        ("Service", "m"),
        ("Service", GRA),
        ("Service", RBX),
    ]
    assert objs[("Deployment", GRA)]["spec"]["replicas"] == 2
    assert objs[("Deployment", RBX)]["spec"]["replicas"] == 1


def test_every_child_is_owned_and_labelled() -> None:
    for obj in render(model()).values():
        meta = obj["metadata"]
        assert meta["namespace"] == "bank"
        assert meta["ownerReferences"][0]["uid"] == "u-1"
        assert meta["ownerReferences"][0]["controller"] is True
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "meridian"
        assert meta["labels"]["serving.meridian.dev/model-deployment"] == "m"


def test_pod_is_pinned_to_region_product_and_memory() -> None:
    pod = render(model())[("Deployment", GRA)]["spec"]["template"]["spec"]
    exprs = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchExpressions"
    ]
    assert {"key": "node-restriction.kubernetes.io/region", "operator": "In", "values": ["gra"]} in exprs
    assert {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["H100-80GB-HBM3"]} in exprs
    assert {"key": "nvidia.com/gpu.memory", "operator": "Gt", "values": ["79999"]} in exprs
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"


def test_triton_container_ports_probes_gpus_and_shm() -> None:
    pod = render(model())[("Deployment", GRA)]["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert c["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] >= 1200
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "4Gi"}
    assert c["image"] == Settings().images["onnx"]


def test_mig_resource_name_is_requested_and_tolerated() -> None:
    md = model(resources={"gpu": {"resourceName": "nvidia.com/mig-3g.40gb"}})
    pod = render(md)[("Deployment", GRA)]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/mig-3g.40gb"] == "1"
    assert pod["tolerations"][0]["key"] == "nvidia.com/mig-3g.40gb"


def test_services_select_all_regions_or_one() -> None:
    objs = render(model())
    assert objs[("Service", "m")]["spec"]["selector"] == {"serving.meridian.dev/model-deployment": "m"}
    assert objs[("Service", RBX)]["spec"]["selector"] == {
        "serving.meridian.dev/model-deployment": "m",
        "serving.meridian.dev/region": "rbx",
    }
    assert [p["port"] for p in objs[("Service", "m")]["spec"]["ports"]] == [8000, 8001, 8002]


def test_config_change_rolls_pods() -> None:
    a = render(model())[("Deployment", GRA)]["spec"]["template"]["metadata"]["annotations"]
    b = render(model(runtime={"maxBatchSize": 8}))[("Deployment", GRA)]["spec"]["template"]["metadata"]["annotations"]
    assert a != b
