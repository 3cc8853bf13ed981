"""The TensorRT-LLM in-flight batcher repository: ensemble, preprocessing, tensorrt_llm, postprocessing, BLS.

Tensor names, types and shapes are the contract of NVIDIA's tensorrtllm backend and of the
model.py files shipped in the Triton image (preprocessing, postprocessing, tensorrt_llm_bls read
their own configs at start-up and fail on a missing output). Meridian serves decoder-only text
models, so multimodal, disaggregated-serving and KV-retention tensors are left out.

The ensemble is named after the model clients call (spec.model.name); the other four keep the
names the BLS model and the image's scripts look up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meridian.api.modeldeployment import ModelDeployment
from meridian.runtime.layout import ENGINE_DIR, TOKENIZER_DIR
from meridian.runtime.modelconfig import (
    Tensor,
    dynamic_batching,
    inputs,
    instance_group,
    model_config,
    outputs,
    parameters,
    tensor,
)
from meridian.runtime.pbtxt import render

PREPROCESSING, TENSORRT_LLM, POSTPROCESSING, BLS = "preprocessing", "tensorrt_llm", "postprocessing", "tensorrt_llm_bls"
COMPONENTS = (PREPROCESSING, TENSORRT_LLM, POSTPROCESSING, BLS)
PYTHON_COMPONENTS = (PREPROCESSING, POSTPROCESSING, BLS)  # model.py copied from the image
BATCHING_STRATEGY = {"inflight": "inflight_fused_batching", "static": "V1"}


def _opt(name: str, dtype: str, *dims: int) -> Tensor:
    """An optional per-request value: [1] on the wire, a scalar for the backend."""
    return tensor(name, dtype, *dims, optional=True, scalar=True)


def _ragged(name: str, dtype: str, *dims: int) -> Tensor:
    return tensor(name, dtype, *dims, optional=True, ragged=True)


# The values a client may set per request, shared by the ensemble and the BLS entry points.
_SAMPLING_INPUTS: tuple[tuple[str, str], ...] = (
    ("end_id", "INT32"),
    ("pad_id", "INT32"),
    ("top_k", "INT32"),
    ("top_p", "FP32"),
    ("temperature", "FP32"),
    ("length_penalty", "FP32"),
    ("repetition_penalty", "FP32"),
    ("min_tokens", "INT32"),
    ("presence_penalty", "FP32"),
    ("frequency_penalty", "FP32"),
    ("seed", "UINT64"),
    ("return_log_probs", "BOOL"),
    ("return_context_logits", "BOOL"),
    ("return_generation_logits", "BOOL"),
    ("return_perf_metrics", "BOOL"),
    ("return_num_input_tokens", "BOOL"),
    ("return_num_output_tokens", "BOOL"),
    ("num_return_sequences", "INT32"),
    ("beam_width", "INT32"),
    ("stream", "BOOL"),
    ("exclude_input_in_output", "BOOL"),
)

# Per-request statistics the backend returns next to the tokens.
_STAT_OUTPUTS: tuple[Tensor, ...] = (
    tensor("batch_index", "INT32", 1),
    tensor("sequence_index", "INT32", 1),
    tensor("kv_cache_alloc_new_blocks", "INT32", 1),
    tensor("kv_cache_reused_blocks", "INT32", 1),
    tensor("kv_cache_alloc_total_blocks", "INT32", 1),
    tensor("arrival_time_ns", "INT64", 1),
    tensor("first_scheduled_time_ns", "INT64", 1),
    tensor("first_token_time_ns", "INT64", 1),
    tensor("last_token_time_ns", "INT64", 1),
    tensor("acceptance_rate", "FP32", 1),
    tensor("total_accepted_draft_tokens", "INT32", 1),
    tensor("total_draft_tokens", "INT32", 1),
    tensor("num_input_tokens", "INT32", 1),
    tensor("num_output_tokens", "INT32", 1),
)

_LOGIT_OUTPUTS: tuple[Tensor, ...] = (
    tensor("cum_log_probs", "FP32", -1),
    tensor("output_log_probs", "FP32", -1, -1),
    tensor("context_logits", "FP32", -1, -1),
    tensor("generation_logits", "FP32", -1, -1, -1),
)

# Entry-point inputs (ensemble and BLS), beyond the sampling values.
_TEXT_INPUTS: tuple[Tensor, ...] = (
    tensor("text_input", "STRING", 1),
    tensor("decoder_text_input", "STRING", 1, optional=True),
    tensor("max_tokens", "INT32", 1),
    tensor("bad_words", "STRING", -1, optional=True),
    tensor("stop_words", "STRING", -1, optional=True),
    tensor("embedding_bias_words", "STRING", -1, optional=True),
    tensor("embedding_bias_weights", "FP32", -1, optional=True),
    tensor("prompt_embedding_table", "FP16", -1, -1, optional=True),
    tensor("prompt_vocab_size", "INT32", 1, optional=True),
    tensor("prompt_table_extra_id", "UINT64", 1, optional=True),
    tensor("lora_task_id", "UINT64", 1, optional=True),
    tensor("lora_weights", "FP16", -1, -1, optional=True, ragged=True),
    tensor("lora_config", "INT32", -1, 3, optional=True, ragged=True),
    tensor("guided_decoding_guide_type", "STRING", 1, optional=True),
    tensor("guided_decoding_guide", "STRING", 1, optional=True),
)

ENSEMBLE_INPUTS: tuple[Tensor, ...] = (*_TEXT_INPUTS, *(tensor(n, t, 1, optional=True) for n, t in _SAMPLING_INPUTS))
ENSEMBLE_OUTPUTS: tuple[Tensor, ...] = (tensor("text_output", "STRING", -1), *_LOGIT_OUTPUTS, *_STAT_OUTPUTS)

BLS_INPUTS: tuple[Tensor, ...] = (
    *ENSEMBLE_INPUTS,
    tensor("num_draft_tokens", "INT32", 1, optional=True),
    _opt("use_draft_logits", "BOOL", 1),
)
BLS_OUTPUTS = ENSEMBLE_OUTPUTS

PREPROCESSING_INPUTS: tuple[Tensor, ...] = (
    tensor("QUERY", "STRING", 1),
    tensor("DECODER_QUERY", "STRING", 1, optional=True),
    tensor("REQUEST_OUTPUT_LEN", "INT32", 1),
    tensor("BAD_WORDS_DICT", "STRING", -1, optional=True),
    tensor("STOP_WORDS_DICT", "STRING", -1, optional=True),
    tensor("EMBEDDING_BIAS_WORDS", "STRING", -1, optional=True),
    tensor("EMBEDDING_BIAS_WEIGHTS", "FP32", -1, optional=True),
    tensor("END_ID", "INT32", 1, optional=True),
    tensor("PAD_ID", "INT32", 1, optional=True),
    tensor("PROMPT_TABLE_EXTRA_ID", "UINT64", 1, optional=True),
)
# All of them: the image's preprocessing model.py and the BLS look every one of these up by name.
PREPROCESSING_OUTPUTS: tuple[Tensor, ...] = (
    tensor("INPUT_ID", "INT32", -1),
    tensor("REQUEST_INPUT_LEN", "INT32", 1),
    tensor("DECODER_INPUT_ID", "INT32", -1),
    tensor("REQUEST_DECODER_INPUT_LEN", "INT32", 1),
    tensor("BAD_WORDS_IDS", "INT32", 2, -1),
    tensor("STOP_WORDS_IDS", "INT32", 2, -1),
    tensor("EMBEDDING_BIAS", "FP32", -1),
    tensor("REQUEST_OUTPUT_LEN", "INT32", -1),
    tensor("OUT_END_ID", "INT32", 1),
    tensor("OUT_PAD_ID", "INT32", 1),
    tensor("OUT_PROMPT_TABLE_EXTRA_IDS", "UINT64", -1),
    tensor("PIXEL_VALUES", "FP16", -1, -1, -1, -1),
    tensor("ASPECT_RATIO_IDS", "INT64", -1),
    tensor("ASPECT_RATIO_MASK", "INT64", -1, -1),
    tensor("CROSS_ATTENTION_MASK", "INT64", -1, -1, -1),
    tensor("IMAGE_SIZES", "INT64", -1, 2),
    tensor("IS_VIDEO_INPUT", "BOOL", 1),
    tensor("ATTENTION_MASK", "INT64", -1),
    tensor("IMAGE_GRID_THW", "INT64", 3),
    tensor("VISION_INPUT_ID", "INT32", -1),
)

TENSORRT_LLM_INPUTS: tuple[Tensor, ...] = (
    _ragged("input_ids", "INT32", -1),
    tensor("input_lengths", "INT32", 1, scalar=True),
    tensor("request_output_len", "INT32", 1, scalar=True),
    _ragged("decoder_input_ids", "INT32", -1),
    _opt("decoder_input_lengths", "INT32", 1),
    _ragged("draft_input_ids", "INT32", -1),
    _ragged("draft_logits", "FP32", -1, -1),
    _opt("draft_acceptance_threshold", "FP32", 1),
    _opt("end_id", "INT32", 1),
    _opt("pad_id", "INT32", 1),
    _ragged("stop_words_list", "INT32", 2, -1),
    _ragged("bad_words_list", "INT32", 2, -1),
    _ragged("embedding_bias", "FP32", -1),
    _opt("beam_width", "INT32", 1),
    _opt("num_return_sequences", "INT32", 1),
    _opt("temperature", "FP32", 1),
    _opt("runtime_top_k", "INT32", 1),
    _opt("runtime_top_p", "FP32", 1),
    _opt("runtime_top_p_min", "FP32", 1),
    _opt("runtime_top_p_decay", "FP32", 1),
    _opt("runtime_top_p_reset_ids", "INT32", 1),
    _opt("len_penalty", "FP32", 1),
    _opt("early_stopping", "BOOL", 1),
    _opt("repetition_penalty", "FP32", 1),
    _opt("min_tokens", "INT32", 1),
    _opt("beam_search_diversity_rate", "FP32", 1),
    _opt("presence_penalty", "FP32", 1),
    _opt("frequency_penalty", "FP32", 1),
    _opt("seed", "UINT64", 1),
    _opt("return_log_probs", "BOOL", 1),
    _opt("return_context_logits", "BOOL", 1),
    _opt("return_generation_logits", "BOOL", 1),
    _opt("return_perf_metrics", "BOOL", 1),
    _opt("return_num_input_tokens", "BOOL", 1),
    _opt("return_num_output_tokens", "BOOL", 1),
    _opt("exclude_input_in_output", "BOOL", 1),
    _opt("stop", "BOOL", 1),
    _opt("streaming", "BOOL", 1),
    _ragged("prompt_embedding_table", "FP16", -1, -1),
    _ragged("prompt_table_extra_ids", "UINT64", -1),
    _opt("prompt_vocab_size", "INT32", 1),
    _opt("lora_task_id", "UINT64", 1),
    _ragged("lora_weights", "FP16", -1, -1),
    _ragged("lora_config", "INT32", -1, 3),
    _ragged("guided_decoding_guide_type", "STRING", 1),
    _ragged("guided_decoding_guide", "STRING", 1),
)
TENSORRT_LLM_OUTPUTS: tuple[Tensor, ...] = (
    tensor("output_ids", "INT32", -1, -1),
    tensor("sequence_length", "INT32", -1),
    *_LOGIT_OUTPUTS,
    *_STAT_OUTPUTS,
)

POSTPROCESSING_INPUTS = (tensor("TOKENS_BATCH", "INT32", -1, -1), tensor("SEQUENCE_LENGTH", "INT32", -1))
POSTPROCESSING_OUTPUTS = (tensor("OUTPUT", "STRING", -1),)


@dataclass(frozen=True)
class Step:
    """One ensemble step; maps are {step model tensor: ensemble tensor}, as in ensemble_scheduling."""

    model: str
    input_map: Mapping[str, str]
    output_map: Mapping[str, str]

    def message(self) -> dict[str, Any]:
        return {
            "model_name": self.model,
            "model_version": -1,
            "input_map": [{"key": k, "value": v} for k, v in self.input_map.items()],
            "output_map": [{"key": k, "value": v} for k, v in self.output_map.items()],
        }


def _same(*names: str) -> dict[str, str]:
    return {n: n for n in names}


ENSEMBLE_STEPS: tuple[Step, ...] = (
    Step(
        PREPROCESSING,
        {
            "QUERY": "text_input",
            "DECODER_QUERY": "decoder_text_input",
            "REQUEST_OUTPUT_LEN": "max_tokens",
            "BAD_WORDS_DICT": "bad_words",
            "STOP_WORDS_DICT": "stop_words",
            "EMBEDDING_BIAS_WORDS": "embedding_bias_words",
            "EMBEDDING_BIAS_WEIGHTS": "embedding_bias_weights",
            "END_ID": "end_id",
            "PAD_ID": "pad_id",
            "PROMPT_TABLE_EXTRA_ID": "prompt_table_extra_id",
        },
        {
            "INPUT_ID": "_INPUT_ID",
            "REQUEST_INPUT_LEN": "_REQUEST_INPUT_LEN",
            "DECODER_INPUT_ID": "_DECODER_INPUT_ID",
            "REQUEST_DECODER_INPUT_LEN": "_REQUEST_DECODER_INPUT_LEN",
            "REQUEST_OUTPUT_LEN": "_REQUEST_OUTPUT_LEN",
            "STOP_WORDS_IDS": "_STOP_WORDS_IDS",
            "BAD_WORDS_IDS": "_BAD_WORDS_IDS",
            "EMBEDDING_BIAS": "_EMBEDDING_BIAS",
            "OUT_END_ID": "_PREPROCESSOR_END_ID",
            "OUT_PAD_ID": "_PREPROCESSOR_PAD_ID",
            "OUT_PROMPT_TABLE_EXTRA_IDS": "_OUT_PROMPT_TABLE_EXTRA_IDS",
        },
    ),
    Step(
        TENSORRT_LLM,
        {
            "input_ids": "_INPUT_ID",
            "input_lengths": "_REQUEST_INPUT_LEN",
            "decoder_input_ids": "_DECODER_INPUT_ID",
            "decoder_input_lengths": "_REQUEST_DECODER_INPUT_LEN",
            "request_output_len": "_REQUEST_OUTPUT_LEN",
            "end_id": "_PREPROCESSOR_END_ID",
            "pad_id": "_PREPROCESSOR_PAD_ID",
            "stop_words_list": "_STOP_WORDS_IDS",
            "bad_words_list": "_BAD_WORDS_IDS",
            "embedding_bias": "_EMBEDDING_BIAS",
            "prompt_table_extra_ids": "_OUT_PROMPT_TABLE_EXTRA_IDS",
            "runtime_top_k": "top_k",
            "runtime_top_p": "top_p",
            "len_penalty": "length_penalty",
            "streaming": "stream",
            **_same(
                "temperature",
                "repetition_penalty",
                "min_tokens",
                "presence_penalty",
                "frequency_penalty",
                "seed",
                "return_log_probs",
                "return_context_logits",
                "return_generation_logits",
                "return_perf_metrics",
                "return_num_input_tokens",
                "return_num_output_tokens",
                "num_return_sequences",
                "beam_width",
                "exclude_input_in_output",
                "prompt_embedding_table",
                "prompt_vocab_size",
                "lora_task_id",
                "lora_weights",
                "lora_config",
                "guided_decoding_guide_type",
                "guided_decoding_guide",
            ),
        },
        {
            "output_ids": "_TOKENS_BATCH",
            "sequence_length": "_SEQUENCE_LENGTH",
            **_same(*(t.name for t in (*_LOGIT_OUTPUTS, *_STAT_OUTPUTS))),
        },
    ),
    Step(
        POSTPROCESSING,
        {"TOKENS_BATCH": "_TOKENS_BATCH", "SEQUENCE_LENGTH": "_SEQUENCE_LENGTH"},
        {"OUTPUT": "text_output"},
    ),
)


def _decoupled(streaming: bool) -> dict[str, Any]:
    return {"decoupled": streaming}


def _python_model(
    name: str,
    max_batch_size: int,
    ins: Sequence[Tensor],
    outs: Sequence[Tensor],
    params: Mapping[str, str],
    **extra: Any,
) -> str:
    return render(
        model_config(
            name=name,
            backend="python",
            max_batch_size=max_batch_size,
            **extra,
            input=inputs(ins),
            output=outputs(outs),
            instance_group=instance_group("KIND_CPU"),
            parameters=parameters(params),
        )
    )


def tensorrt_llm_parameters(md: ModelDeployment) -> dict[str, str]:
    """Backend parameters from the spec, plus those the backend reads unconditionally (it fails without them)."""
    rt = md.spec.runtime
    return {
        "gpt_model_type": BATCHING_STRATEGY[rt.batching],
        "gpt_model_path": ENGINE_DIR,
        "max_beam_width": "1",
        "batch_scheduler_policy": "guaranteed_no_evict",
        "kv_cache_free_gpu_mem_fraction": repr(float(rt.kv_cache_free_gpu_mem_fraction)),
        "exclude_input_in_output": "true",
        "FORCE_CPU_ONLY_INPUT_TENSORS": "no",
        # read without a default by the backend's guided-decoding setup; empty turns the feature off
        "tokenizer_dir": TOKENIZER_DIR,
        "xgrammar_tokenizer_info_path": "",
        "guided_decoding_backend": "",
    }


def tensorrt_llm_config(md: ModelDeployment) -> str:
    """The C++ backend model. KIND_CPU is NVIDIA's setting too: the backend places ranks on GPUs itself."""
    rt = md.spec.runtime
    return render(
        model_config(
            name=TENSORRT_LLM,
            backend="tensorrtllm",
            max_batch_size=rt.max_batch_size,
            model_transaction_policy=_decoupled(rt.streaming),
            dynamic_batching=dynamic_batching(
                rt.max_batch_size, preferred_batch_size=[rt.max_batch_size], max_queue_delay_microseconds=0
            ),
            input=inputs(TENSORRT_LLM_INPUTS),
            output=outputs(TENSORRT_LLM_OUTPUTS),
            instance_group=instance_group("KIND_CPU"),
            parameters=parameters(tensorrt_llm_parameters(md)),
        )
    )


def preprocessing_config(md: ModelDeployment) -> str:
    n = md.spec.runtime.max_batch_size
    params = {
        "tokenizer_dir": TOKENIZER_DIR,
        "add_special_tokens": "true",
        "multimodal_model_path": "",  # read without a default by the image's model.py
        "gpt_model_path": ENGINE_DIR,
    }
    return _python_model(
        PREPROCESSING, n, PREPROCESSING_INPUTS, PREPROCESSING_OUTPUTS, params, dynamic_batching=dynamic_batching(n)
    )


def postprocessing_config(md: ModelDeployment) -> str:
    n = md.spec.runtime.max_batch_size
    params = {"tokenizer_dir": TOKENIZER_DIR, "skip_special_tokens": "true"}
    return _python_model(
        POSTPROCESSING, n, POSTPROCESSING_INPUTS, POSTPROCESSING_OUTPUTS, params, dynamic_batching=dynamic_batching(n)
    )


def bls_config(md: ModelDeployment) -> str:
    rt = md.spec.runtime
    params = {
        "accumulate_tokens": "false",
        "tensorrt_llm_model_name": TENSORRT_LLM,
        "tensorrt_llm_draft_model_name": "",
        "multimodal_encoders_name": "",
    }
    return _python_model(
        BLS, rt.max_batch_size, BLS_INPUTS, BLS_OUTPUTS, params, model_transaction_policy=_decoupled(rt.streaming)
    )


def ensemble_config(md: ModelDeployment, name: str) -> str:
    """The model clients call: text in, text out, composed of the three steps above."""
    return render(
        model_config(
            name=name,
            platform="ensemble",
            max_batch_size=md.spec.runtime.max_batch_size,
            input=inputs(ENSEMBLE_INPUTS),
            output=outputs(ENSEMBLE_OUTPUTS),
            ensemble_scheduling={"step": [s.message() for s in ENSEMBLE_STEPS]},
        )
    )


def trtllm_repository(md: ModelDeployment, ensemble_name: str) -> dict[str, str]:
    """{path: config.pbtxt} of the five models."""
    return {
        f"{ensemble_name}/config.pbtxt": ensemble_config(md, ensemble_name),
        f"{PREPROCESSING}/config.pbtxt": preprocessing_config(md),
        f"{TENSORRT_LLM}/config.pbtxt": tensorrt_llm_config(md),
        f"{POSTPROCESSING}/config.pbtxt": postprocessing_config(md),
        f"{BLS}/config.pbtxt": bls_config(md),
    }
