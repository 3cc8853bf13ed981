"""What the recommender sees of each pod: one metric value and, when known, its queueing signals.

Sources (sources/) turn Triton's counters into these; the recommender never touches I/O. A pod that is
not ready (starting, loading the engine) is sent with ready=False; a ready pod whose scrape failed or
whose counters have only one sample so far is sent with value=None ("missing", in HPA terms).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from meridian.api.modeldeployment import ScalingMetric

METRICS: Final[tuple[ScalingMetric, ...]] = (
    "queueComputeRatio",
    "pendingRequests",
    "inFlightRequests",
    "kvCacheUtilization",
    "gpuUtilization",
    "requestRate",
)

# Metrics whose value grows sharply near saturation (queueing), rather than in proportion to load.
QUEUEING_METRICS: Final[frozenset[ScalingMetric]] = frozenset({"queueComputeRatio", "pendingRequests"})


@dataclass(frozen=True, slots=True)
class PodLoad:
    """Queueing signals of one pod over the last window, from the same Triton counters (Little's law).

    throughput: completed requests per second (Δnv_inference_request_success / Δt).
    busy: mean requests executing (Δnv_inference_compute_infer_duration_us / Δt, in seconds per second).
    waiting: mean requests queued over the window (Δnv_inference_queue_duration_us / Δt).
    pending: requests queued now (nv_inference_pending_request_count).
    capacity: sequences the pod runs at once (nv_trt_llm_request_metrics{request_type="max"}), if exposed.
    kv_used, kv_max: KV-cache blocks in use now and in all (nv_trt_llm_kv_cache_block_metrics), and
    active: sequences running now (nv_trt_llm_request_metrics{request_type="active"}), if exposed: together
    they tell how many sequences of the current mix of lengths the cache holds.
    """

    throughput: float
    busy: float
    waiting: float
    pending: float
    capacity: float | None = None
    kv_used: float | None = None
    kv_max: float | None = None
    active: float | None = None


@dataclass(frozen=True, slots=True)
class PodSample:
    """One pod at one evaluation: ready or not, the configured metric's value, and its load if known."""

    pod: str
    ready: bool = True
    value: float | None = None
    load: PodLoad | None = None

    @property
    def missing(self) -> bool:
        """Ready but without a value: the HPA's "missing metrics" pod."""
        return self.ready and self.value is None
