"""Bad input is rejected by the API server itself, with a message that names the field."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.integration

GOOD: dict[str, Any] = {
    "model": {"format": "onnx", "storageUri": "s3://models/m"},
    "replicas": 1,
}


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(base))
    for k, v in over.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


CASES = {
    "gpu count differs from TP×PP": (
        {"runtime": {"tensorParallelSize": 2}, "resources": {"gpu": {"count": 3}}},
        "spec.resources.gpu.count",
        "must equal runtime.tensorParallelSize × runtime.pipelineParallelSize",
    ),
    "minReplicas above maxReplicas": (
        {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}},
        "spec.autoscaling.minReplicas",
        "minReplicas must not exceed maxReplicas",
    ),
    "idleSeconds without minReplicas 0": (
        {"autoscaling": {"enabled": True, "idleSeconds": 60}},
        "spec.autoscaling.idleSeconds",
        "idleSeconds needs minReplicas 0",
    ),
    "wakeOn without minReplicas 0": (
        {"autoscaling": {"enabled": True, "minReplicas": 1, "wakeOn": {"query": "up"}}},
        "spec.autoscaling.wakeOn",
        "wakeOn needs minReplicas 0",
    ),
    "empty wake query": (
        {"autoscaling": {"enabled": True, "minReplicas": 0, "wakeOn": {"query": ""}}},
        "spec.autoscaling.wakeOn.query",
        "at least 1 chars long",
    ),
    "unknown format": ({"model": {"format": "gguf"}}, "spec.model.format", "Unsupported value"),
    "region allowed and excluded": (
        {"placement": {"regions": [{"name": "gra"}], "excludeRegions": ["gra"]}},
        "spec.placement.excludeRegions",
        "a region cannot be both in regions and excludeRegions",
    ),
    "storageUri with unknown scheme": (
        {"model": {"storageUri": "ftp://host/model"}},
        "spec.model.storageUri",
        "storageUri must start with s3://, pvc://, hf:// or oci://",
    ),
    "fraction above 1": (
        {"runtime": {"kvCacheFreeGpuMemFraction": 1.5}},
        "spec.runtime.kvCacheFreeGpuMemFraction",
        "less than or equal to 1",
    ),
    "negative replicas": ({"replicas": -1}, "spec.replicas", "greater than or equal to 0"),
    "cpu not a quantity": ({"resources": {"cpu": "eight"}}, "spec.resources.cpu", "must be a non-negative quantity"),
    "empty shared memory": (
        {"resources": {"sharedMemory": ""}},
        "spec.resources.sharedMemory",
        "must be a non-negative quantity",
    ),
    "negative memory": ({"resources": {"memory": -1}}, "spec.resources.memory", "must be a non-negative quantity"),
    "tensorrt-llm without tokenizer": (
        {"model": {"format": "tensorrt-llm"}},
        "spec.model.tokenizerUri",
        "model.tokenizerUri is required when model.format is tensorrt-llm",
    ),
    "missing storageUri": ({"model": {"storageUri": None}}, "spec.model.storageUri", "Required value"),
    "routing without the OpenAI frontend": (
        {"routing": {"gateway": {"name": "inference"}}},
        "spec.routing",
        "routing needs runtime.openai.enabled",
    ),
    "routing with a relative path": (
        {"routing": {"gateway": {"name": "inference"}, "path": "v1"}},
        "spec.routing.path",
        "should match '^/'",
    ),
    "OpenAI frontend for an onnx model": (
        {"runtime": {"openai": {"enabled": True}}},
        "spec.runtime.openai.enabled",
        "runtime.openai.enabled needs model.format tensorrt-llm",
    ),
    "OpenAI frontend on two GPUs": (
        {
            "model": {"format": "tensorrt-llm", "tokenizerUri": "hf://o/t"},
            "runtime": {"openai": {"enabled": True}, "tensorParallelSize": 2},
        },
        "spec.runtime.openai.enabled",
        "tensorParallelSize × pipelineParallelSize = 1",
    ),
    "OpenAI frontend with tritonserver flags": (
        {
            "model": {"format": "tensorrt-llm", "tokenizerUri": "hf://o/t"},
            "runtime": {"openai": {"enabled": True}, "extraArgs": ["--log-verbose=1"]},
        },
        "spec.runtime.openai.enabled",
        "no runtime.extraArgs",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_api_server_rejects_with_field_named(case: str, k8s: client.ApiClient, namespace: str) -> None:
    over, field, message = CASES[case]
    spec = merged(GOOD, over)
    spec["model"] = {k: v for k, v in spec["model"].items() if v is not None}
    body = {
        "apiVersion": "serving.meridian.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "bad"},
        "spec": spec,
    }
    with pytest.raises(ApiException) as err:
        client.CustomObjectsApi(k8s).create_namespaced_custom_object(
            "serving.meridian.dev", "v1alpha1", namespace, "modeldeployments", body
        )
    assert err.value.status == 422
    text = json.loads(err.value.body)["message"]
    assert field in text and message in text, text


def test_valid_spec_is_accepted_and_defaulted(k8s: client.ApiClient, namespace: str) -> None:
    body = {
        "apiVersion": "serving.meridian.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "good"},
        "spec": {
            "model": {"format": "tensorrt-llm", "storageUri": "s3://m/e", "tokenizerUri": "hf://o/t"},
            "runtime": {"tensorParallelSize": 2},
            "resources": {"gpu": {"count": 2}},
        },
    }
    created = client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        "serving.meridian.dev", "v1alpha1", namespace, "modeldeployments", body
    )
    assert created["spec"]["runtime"]["maxBatchSize"] == 64
    assert created["spec"]["placement"]["failover"]["unschedulableSeconds"] == 120
    assert created["spec"]["autoscaling"]["scaleDownStabilizationSeconds"] == 300
    assert created["spec"]["resources"]["gpu"]["resourceName"] == "nvidia.com/gpu"
    assert created["spec"]["runtime"]["openai"] == {"enabled": False}


def test_the_openai_frontend_on_one_gpu_is_accepted(k8s: client.ApiClient, namespace: str) -> None:
    spec = {
        "model": {"format": "tensorrt-llm", "storageUri": "s3://m/e", "tokenizerUri": "hf://o/t"},
        "runtime": {"openai": {"enabled": True}},
    }
    body = {"apiVersion": "serving.meridian.dev/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "chat"}}
    created = client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        "serving.meridian.dev", "v1alpha1", namespace, "modeldeployments", {**body, "spec": spec}
    )
    assert created["spec"]["runtime"]["openai"]["enabled"] is True


# -- Region ---------------------------------------------------------------------------------------------


def _create_region(k8s: client.ApiClient, spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    name = f"v-{uuid.uuid4().hex[:8]}"
    body = {"apiVersion": "serving.meridian.dev/v1alpha1", "kind": "Region", "metadata": {"name": name}, "spec": spec}
    return name, client.CustomObjectsApi(k8s).create_cluster_custom_object(
        "serving.meridian.dev", "v1alpha1", "regions", body
    )


def _delete_region(k8s: client.ApiClient, name: str) -> None:
    client.CustomObjectsApi(k8s).delete_cluster_custom_object("serving.meridian.dev", "v1alpha1", "regions", name)


@pytest.mark.parametrize(
    "selector",
    [{}, {"": "gra"}, {"node-restriction.kubernetes.io/region": ""}],
    ids=["empty", "empty key", "empty value"],
)
def test_region_with_empty_node_selector_is_rejected(k8s: client.ApiClient, selector: dict[str, str]) -> None:
    try:
        name, _ = _create_region(k8s, {"country": "FR", "nodeSelector": selector})
    except ApiException as e:
        err = e
    else:
        _delete_region(k8s, name)
        pytest.fail(f"the API server accepted nodeSelector {selector}")
    assert err.status == 422
    text = json.loads(err.body)["message"]
    # the API server points at the field itself, then gives the rule's message
    assert "spec.nodeSelector: Invalid value" in text and "must name at least one label" in text, text


def test_region_without_node_selector_is_accepted(k8s: client.ApiClient) -> None:
    name, created = _create_region(k8s, {"country": "FR", "jurisdictions": ["EU"]})
    try:
        assert "nodeSelector" not in created["spec"]  # absent stays absent: the default is the operator's
    finally:
        _delete_region(k8s, name)
    name, created = _create_region(
        k8s, {"country": "FR", "nodeSelector": {"node-restriction.kubernetes.io/region": "x"}}
    )
    _delete_region(k8s, name)
    assert created["spec"]["nodeSelector"] == {"node-restriction.kubernetes.io/region": "x"}
