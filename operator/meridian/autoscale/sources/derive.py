"""From one pod's scrape and counter increase to a PodSample: each metric exactly as documented.

queueComputeRatio = Δqueue_us ÷ max(Δcompute_us, Δt·1 µs/s), NVIDIA's triton:queue_compute:ratio
  rule (rate(queue)/clamp_min(rate(compute), 1)): 0 when idle, large when queued work is not served.
pendingRequests = nv_inference_pending_request_count (gauge, summed over the pod's models).
inFlightRequests = pending + running: TensorRT-LLM's active requests (nv_trt_llm_request_metrics
  {request_type="active"}), else the mean executing over the window (Δcompute_us ÷ Δt), KServe's
  "concurrency".
kvCacheUtilization = Σ kv blocks "used" ÷ Σ kv blocks "max" (TensorRT-LLM only; else missing).
gpuUtilization = mean nv_gpu_utilization over the pod's GPUs (0..1).
requestRate = Δnv_inference_request_success ÷ Δt, per second.
A metric that needs a rate is missing until the pod has been scraped twice.
"""

from __future__ import annotations

from meridian.api.modeldeployment import ScalingMetric
from meridian.autoscale.samples import PodLoad, PodSample
from meridian.autoscale.sources.rates import Increase
from meridian.autoscale.sources.triton import COMPUTE_US, QUEUE_US, SUCCESS, TritonScrape

US = 1e6


def metric_value(metric: ScalingMetric, scrape: TritonScrape, inc: Increase | None) -> float | None:
    """The per-pod value of `metric`, or None when this scrape cannot tell."""
    if metric == "pendingRequests":
        return scrape.pending
    if metric == "kvCacheUtilization":
        if scrape.kv_used is None or not scrape.kv_max:
            return None
        return scrape.kv_used / scrape.kv_max
    if metric == "gpuUtilization":
        return scrape.gpu_utilization
    if metric == "inFlightRequests" and scrape.active is not None:
        return scrape.active + scrape.pending
    if inc is None:
        return None
    if metric == "inFlightRequests":
        return inc.rate(COMPUTE_US) / US + scrape.pending
    if metric == "requestRate":
        return inc.rate(SUCCESS)
    return inc.rate(QUEUE_US) / max(inc.rate(COMPUTE_US), 1.0)


def pod_load(scrape: TritonScrape, inc: Increase | None) -> PodLoad | None:
    """Little's-law signals for the meridian policy; None until there is a rate."""
    if inc is None:
        return None
    return PodLoad(
        throughput=inc.rate(SUCCESS),
        busy=inc.rate(COMPUTE_US) / US,
        waiting=inc.rate(QUEUE_US) / US,
        pending=scrape.pending,
        capacity=scrape.capacity,
        kv_used=scrape.kv_used,
        kv_max=scrape.kv_max,
        active=scrape.active,
    )


def pod_sample(pod: str, metric: ScalingMetric, scrape: TritonScrape, inc: Increase | None) -> PodSample:
    return PodSample(pod=pod, ready=True, value=metric_value(metric, scrape, inc), load=pod_load(scrape, inc))
