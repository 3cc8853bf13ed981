"""Specs the runtime cannot serve are refused before any pod starts, with the field named."""

from __future__ import annotations

from typing import Any

import pytest

from meridian.api.modeldeployment import ModelDeployment
from meridian.runtime.validate import spec_problems

pytestmark = pytest.mark.unit


def deployment(model: dict[str, Any], runtime: dict[str, Any] | None = None) -> ModelDeployment:
    return ModelDeployment.model_validate(
        {"metadata": {"name": "llama", "namespace": "bank-a"}, "spec": {"model": model, "runtime": runtime or {}}}
    )


TRTLLM = {"format": "tensorrt-llm", "storageUri": "s3://m/e/", "tokenizerUri": "hf://meta-llama/Llama-3@abc"}


def messages(md: ModelDeployment) -> list[str]:
    problems = spec_problems(md)
    assert all(p.reason == "InvalidRuntimeSpec" for p in problems)
    return [p.message for p in problems]


def test_a_servable_spec_has_no_problems() -> None:
    assert messages(deployment(TRTLLM)) == []
    assert messages(deployment({"format": "onnx", "storageUri": "pvc://models/resnet"})) == []


def test_a_model_name_clashing_with_the_tensorrt_llm_repository_is_refused() -> None:
    (message,) = messages(deployment({**TRTLLM, "name": "preprocessing"}))
    assert message.startswith("spec.model.name 'preprocessing' is taken")


def test_tensorrt_llm_needs_a_tokenizer_and_batching() -> None:
    model = {k: v for k, v in TRTLLM.items() if k != "tokenizerUri"}
    assert messages(deployment(model, {"maxBatchSize": 0})) == [
        "spec.model.tokenizerUri is required when spec.model.format is tensorrt-llm",
        "spec.runtime.maxBatchSize must be at least 1 for tensorrt-llm (in-flight batching)",
    ]


def test_unusable_uris_name_their_field() -> None:
    (message,) = messages(deployment({**TRTLLM, "tokenizerUri": "hf://only-org"}))
    assert message == "spec.model.tokenizerUri 'hf://only-org' must be hf://<org>/<repo>[@revision]"
