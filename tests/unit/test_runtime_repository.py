"""Generated model repositories parse with Triton's own schema and say what the spec asks."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import text_format
from hypothesis import given, settings
from hypothesis import strategies as st
from tritonclient.grpc import model_config_pb2 as mc

from meridian.api.modeldeployment import ModelDeployment
from meridian.runtime.pbtxt import quote, render
from meridian.runtime.repository import model_repository
from meridian.runtime.trtllm import BLS, ENSEMBLE_STEPS, POSTPROCESSING, PREPROCESSING, TENSORRT_LLM

pytestmark = pytest.mark.unit

FORMATS = ["tensorrt-llm", "onnx", "pytorch", "tensorrt", "python"]


def deployment(fmt: str = "tensorrt-llm", name: str = "llama", **runtime: Any) -> ModelDeployment:
    model: dict[str, Any] = {"format": fmt, "storageUri": "s3://models/llama/engine/"}
    if fmt == "tensorrt-llm":
        model["tokenizerUri"] = "hf://meta-llama/Meta-Llama-3-8B-Instruct"
    return ModelDeployment.model_validate(
        {"metadata": {"name": name, "namespace": "bank-a"}, "spec": {"model": model, "runtime": runtime}}
    )


def parse(text: str) -> mc.ModelConfig:
    return text_format.Parse(text, mc.ModelConfig())


def configs(md: ModelDeployment) -> dict[str, mc.ModelConfig]:
    """{model name: parsed config}; also checks that each file sits in its model's directory."""
    out = {}
    for path, text in model_repository(md).items():
        directory, file = path.split("/")
        assert file == "config.pbtxt"
        config = parse(text)
        assert config.name == directory, "Triton requires the directory name to equal the model name"
        out[config.name] = config
    return out


def param(config: mc.ModelConfig, key: str) -> str:
    return str(config.parameters[key].string_value)


@settings(max_examples=60, deadline=None)
@given(
    fmt=st.sampled_from(FORMATS),
    name=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True).filter(
        lambda n: n not in (PREPROCESSING, TENSORRT_LLM, POSTPROCESSING, BLS)
    ),
    max_batch_size=st.integers(1, 4096),
    streaming=st.booleans(),
    batching=st.sampled_from(["inflight", "static"]),
    fraction=st.floats(0.0, 1.0, allow_nan=False),
)
def test_every_generated_config_parses_with_tritons_schema(
    fmt: str, name: str, max_batch_size: int, streaming: bool, batching: str, fraction: float
) -> None:
    md = deployment(
        fmt,
        name,
        maxBatchSize=max_batch_size,
        streaming=streaming,
        batching=batching,
        kvCacheFreeGpuMemFraction=fraction,
    )
    parsed = configs(md)
    assert name in parsed, "clients call spec.model.name, so a model of that name must exist"
    for config in parsed.values():
        assert config.max_batch_size == max_batch_size
    if fmt == "tensorrt-llm":
        llm = parsed[TENSORRT_LLM]
        assert llm.model_transaction_policy.decoupled is streaming
        assert parsed[BLS].model_transaction_policy.decoupled is streaming
        assert float(param(llm, "kv_cache_free_gpu_mem_fraction")) == pytest.approx(fraction)
        assert param(llm, "gpt_model_type") == {"inflight": "inflight_fused_batching", "static": "V1"}[batching]


@pytest.mark.parametrize(
    ("fmt", "backend", "platform", "kind"),
    [
        ("onnx", "onnxruntime", "onnxruntime_onnx", mc.ModelInstanceGroup.KIND_GPU),
        ("pytorch", "pytorch", "pytorch_libtorch", mc.ModelInstanceGroup.KIND_GPU),
        ("tensorrt", "tensorrt", "tensorrt_plan", mc.ModelInstanceGroup.KIND_GPU),
        ("python", "python", "", mc.ModelInstanceGroup.KIND_CPU),
    ],
)
def test_single_model_formats_pick_the_backend_and_batch_dynamically(
    fmt: str, backend: str, platform: str, kind: int
) -> None:
    (config,) = configs(deployment(fmt, "resnet", maxBatchSize=32)).values()
    assert (config.name, config.backend, config.platform) == ("resnet", backend, platform)
    assert config.max_batch_size == 32
    assert [(g.kind, g.count) for g in config.instance_group] == [(kind, 1)]
    assert config.HasField("dynamic_batching")
    # inputs and outputs are left to Triton's auto-complete (model file or model.py)
    assert not config.input
    assert not config.output


def test_a_model_that_does_not_batch_gets_no_dynamic_batcher() -> None:
    (config,) = configs(deployment("onnx", "m", maxBatchSize=0)).values()
    assert config.max_batch_size == 0
    assert not config.HasField("dynamic_batching")


def test_tensorrt_llm_repository_has_the_five_models_with_the_ensemble_named_for_clients() -> None:
    parsed = configs(deployment(name="llama-3-8b"))
    assert set(parsed) == {"llama-3-8b", PREPROCESSING, TENSORRT_LLM, POSTPROCESSING, BLS}
    assert parsed["llama-3-8b"].platform == "ensemble"
    assert parsed[TENSORRT_LLM].backend == "tensorrtllm"
    assert {parsed[m].backend for m in (PREPROCESSING, POSTPROCESSING, BLS)} == {"python"}


def test_tensorrt_llm_parameters_carry_the_spec_and_what_the_backend_reads_unconditionally() -> None:
    llm = configs(deployment(maxBatchSize=128, kvCacheFreeGpuMemFraction=0.85, batching="static"))[TENSORRT_LLM]
    assert param(llm, "gpt_model_type") == "V1"
    assert param(llm, "gpt_model_path") == "/engine"
    assert param(llm, "kv_cache_free_gpu_mem_fraction") == "0.85"
    assert param(llm, "exclude_input_in_output") == "true"
    # the backend throws at load when any of these is absent, even with guided decoding off
    for key in ("tokenizer_dir", "xgrammar_tokenizer_info_path", "guided_decoding_backend", "gpt_model_type"):
        assert key in llm.parameters
    assert param(llm, "guided_decoding_backend") == ""
    assert list(llm.dynamic_batching.preferred_batch_size) == [128]
    # the backend places its ranks on GPUs itself, as in NVIDIA's own repository
    assert [g.kind for g in llm.instance_group] == [mc.ModelInstanceGroup.KIND_CPU]


def test_tokenizer_and_engine_paths_reach_the_python_models() -> None:
    parsed = configs(deployment())
    assert param(parsed[PREPROCESSING], "tokenizer_dir") == "/tokenizer"
    assert param(parsed[POSTPROCESSING], "tokenizer_dir") == "/tokenizer"
    assert param(parsed[PREPROCESSING], "gpt_model_path") == "/engine"
    # read without a default by the image's preprocessing model.py
    assert "multimodal_model_path" in parsed[PREPROCESSING].parameters
    assert param(parsed[BLS], "tensorrt_llm_model_name") == TENSORRT_LLM


def _tensors(config: mc.ModelConfig, kind: str) -> dict[str, Any]:
    return {t.name: t for t in getattr(config, kind)}


def _compatible(a: list[int], b: list[int]) -> bool:
    return len(a) == len(b) and all(x == y or -1 in (x, y) for x, y in zip(a, b, strict=True))


def test_ensemble_wiring_is_what_triton_accepts_at_load_time() -> None:
    """Every mapped tensor exists in the step model, with the same type and a compatible shape."""
    parsed = configs(deployment(name="chat"))
    ensemble = parsed["chat"]
    steps = ensemble.ensemble_scheduling.step
    assert [s.model_name for s in steps] == [s.model for s in ENSEMBLE_STEPS]
    # tensor name -> (data_type, dims, optional) as the ensemble sees it
    known: dict[str, tuple[int, list[int], bool]] = {
        t.name: (t.data_type, list(t.dims), t.optional) for t in ensemble.input
    }
    produced: set[str] = set()
    for step in steps:
        model = parsed[step.model_name]
        step_inputs, step_outputs = _tensors(model, "input"), _tensors(model, "output")
        for model_tensor, ens_tensor in step.input_map.items():
            assert model_tensor in step_inputs, f"{step.model_name} has no input {model_tensor}"
            assert ens_tensor in known, f"{ens_tensor} is used before anything produces it"
            t = step_inputs[model_tensor]
            dtype, dims, optional = known[ens_tensor]
            assert t.data_type == dtype, f"{ens_tensor} -> {step.model_name}.{model_tensor} changes type"
            assert _compatible(list(t.dims), dims), f"{ens_tensor} -> {step.model_name}.{model_tensor} shape"
            assert t.optional or not optional, f"optional {ens_tensor} feeds required {model_tensor}"
        required = {n for n, t in step_inputs.items() if not t.optional}
        assert required <= set(step.input_map), f"{step.model_name} misses required inputs"
        for model_tensor, ens_tensor in step.output_map.items():
            assert model_tensor in step_outputs, f"{step.model_name} has no output {model_tensor}"
            t = step_outputs[model_tensor]
            known[ens_tensor] = (t.data_type, list(t.dims), False)
            produced.add(ens_tensor)
    for out in ensemble.output:
        assert out.name in produced, f"ensemble output {out.name} is produced by no step"
        assert known[out.name][0] == out.data_type


def test_bls_can_request_every_output_of_tensorrt_llm_and_preprocessing_it_asks_for() -> None:
    """The BLS model.py requests these by name; Triton rejects a request for an undeclared output."""
    parsed = configs(deployment())
    llm_outputs = set(_tensors(parsed[TENSORRT_LLM], "output"))
    assert {"output_ids", "sequence_length", "kv_cache_alloc_total_blocks", "first_token_time_ns"} <= llm_outputs
    pre_outputs = set(_tensors(parsed[PREPROCESSING], "output"))
    assert {"INPUT_ID", "PIXEL_VALUES", "IMAGE_SIZES", "IS_VIDEO_INPUT", "VISION_INPUT_ID"} <= pre_outputs


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_any_string_survives_text_format_quoting(text: str) -> None:
    config = parse(render({"name": "m", "parameters": [{"key": "k", "value": {"string_value": text}}]}))
    assert config.parameters["k"].string_value == text
    assert parse(f"name: {quote(text)}").name == text
