"""Triton's /metrics (Prometheus text format) reduced to the numbers the autoscaler uses.

Parsed with prometheus_client's parser. Counters are kept per series (model, version, ...) so their
rates survive a series coming or going; gauges are reduced at once. Note that the parser reports a
counter family under its own name (nv_inference_request_success) but its samples with a `_total`
suffix, so families are matched by name, never samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from prometheus_client.parser import text_string_to_metric_families

QUEUE_US: Final = "nv_inference_queue_duration_us"
COMPUTE_US: Final = "nv_inference_compute_infer_duration_us"
SUCCESS: Final = "nv_inference_request_success"
PENDING: Final = "nv_inference_pending_request_count"
KV_BLOCKS: Final = "nv_trt_llm_kv_cache_block_metrics"
TRTLLM_REQUESTS: Final = "nv_trt_llm_request_metrics"
GPU_UTILIZATION: Final = "nv_gpu_utilization"
COUNTERS: Final = (QUEUE_US, COMPUTE_US, SUCCESS)

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]  # (family, sorted labels)


@dataclass(frozen=True, slots=True)
class TritonScrape:
    """One pod's metrics at one instant: raw counters per series, gauges summed over its models."""

    counters: Mapping[SeriesKey, float] = field(default_factory=dict)
    pending: float = 0.0
    kv_used: float | None = None
    kv_max: float | None = None
    gpu_utilization: float | None = None  # mean over the pod's GPUs, 0..1
    capacity: float | None = None  # TRT-LLM max concurrent requests (request_type="max")
    active: float | None = None  # TRT-LLM requests the batch manager holds (request_type="active")


def _add(total: float | None, value: float) -> float:
    return value if total is None else total + value


def parse(text: str, model: str | None = None) -> TritonScrape:
    """Reduce Triton's metrics text; with `model`, keep only that model's inference series.

    Without `model`, every model in the pod counts, right for a pod that serves one plain model. A
    TensorRT-LLM ensemble reports each composing model too, so request counts would add up several
    times: pass the model whose counters should count. TensorRT-LLM backend metrics (KV cache, max
    requests) sit under the inner model and GPU metrics under no model, so they are never filtered.
    """
    counters: dict[SeriesKey, float] = {}
    pending = 0.0
    kv_used: float | None = None
    kv_max: float | None = None
    capacity: float | None = None
    active: float | None = None
    gpus: list[float] = []
    for family in text_string_to_metric_families(text):
        name = family.name
        for sample in family.samples:
            labels = sample.labels
            if sample.name.endswith("_created"):
                continue
            if name in (*COUNTERS, PENDING) and model is not None and labels.get("model") != model:
                continue
            value = float(sample.value)
            if name in COUNTERS:
                counters[(name, tuple(sorted(labels.items())))] = value
            elif name == PENDING:
                pending += value
            elif name == KV_BLOCKS:
                kind = labels.get("kv_cache_block_type")
                if kind == "used":
                    kv_used = _add(kv_used, value)
                elif kind == "max":
                    kv_max = _add(kv_max, value)
            elif name == TRTLLM_REQUESTS and labels.get("request_type") == "max":
                capacity = _add(capacity, value)
            elif name == TRTLLM_REQUESTS and labels.get("request_type") == "active":
                active = _add(active, value)
            elif name == GPU_UTILIZATION:
                gpus.append(value)
    return TritonScrape(
        counters=counters,
        pending=pending,
        kv_used=kv_used,
        kv_max=kv_max,
        gpu_utilization=sum(gpus) / len(gpus) if gpus else None,
        capacity=capacity,
        active=active,
    )
