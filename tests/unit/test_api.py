"""Defaults in Python equal the schema's, so offline rendering matches what the cluster stores."""

from __future__ import annotations

import pytest

from meridian.api.modeldeployment import ModelDeployment

pytestmark = pytest.mark.unit


def md(spec: dict[str, object], name: str = "m") -> ModelDeployment:
    return ModelDeployment.model_validate({"metadata": {"name": name, "namespace": "ns"}, "spec": spec})


def test_defaults_follow_the_design() -> None:
    m = md({"model": {"format": "onnx", "storageUri": "s3://b/m"}})
    assert m.model_name == "m"
    assert m.spec.replicas == 1
    assert m.spec.runtime.tensor_parallel_size == 1
    assert m.spec.resources.gpu.resource_name == "nvidia.com/gpu"
    assert m.spec.autoscaling.scale_down_stabilization_seconds == 300
    assert m.spec.placement.failover.unschedulable_seconds == 120
    assert m.spec.gpus_per_replica == 1


def test_gpu_count_defaults_to_tp_times_pp() -> None:
    m = md(
        {
            "model": {"format": "tensorrt-llm", "storageUri": "s3://b/m", "tokenizerUri": "hf://o/r"},
            "runtime": {"tensorParallelSize": 4, "pipelineParallelSize": 2},
        }
    )
    assert m.spec.gpus_per_replica == 8


def test_camel_case_round_trip() -> None:
    m = md(
        {
            "model": {"name": "llm", "format": "python", "storageUri": "pvc://claim/models"},
            "resources": {"gpu": {"minMemoryMiB": 40000}},
            "placement": {"excludeRegions": ["eri"], "regions": [{"name": "gra", "weight": 2, "minReplicas": 1}]},
        }
    )
    wire = m.spec.wire()
    assert wire["resources"]["gpu"]["minMemoryMiB"] == 40000
    assert wire["placement"]["excludeRegions"] == ["eri"]
    assert wire["placement"]["regions"][0] == {"name": "gra", "weight": 2, "minReplicas": 1}
    assert m.model_name == "llm"
