"""The meridian policy: queueing model, load estimate from Triton's counters, trend, and Erlang C."""

from __future__ import annotations

import math

import pytest

from meridian.autoscale.meridian import MeridianParams, demand, effective_slots, meridian, trend_growth
from meridian.autoscale.proportional import proportional
from meridian.autoscale.queueing import erlang_c, queue_length, wait_ratio
from meridian.autoscale.samples import PodLoad, PodSample
from meridian.autoscale.state import AutoscaleState

pytestmark = pytest.mark.unit

P = MeridianParams()


def loaded(n: int, value: float, busy: float, *, throughput: float = 1.0, pending: float = 0.0) -> list[PodSample]:
    load = PodLoad(throughput=throughput, busy=busy, waiting=0.0, pending=pending, capacity=8.0)
    return [PodSample(pod=f"p{i}", value=value, load=load) for i in range(n)]


def fewest(load: float, target: float, slots: int = 8) -> int:
    return next(n for n in range(1, 100) if wait_ratio(slots, load / n) <= target)


def test_erlang_c_known_values() -> None:
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = ρ
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(8, 0.0) == 0.0
    assert erlang_c(8, 8.0) == 1.0
    assert wait_ratio(1, 0.5) == pytest.approx(1.0)  # M/M/1 at ρ=0.5: Wq = S
    assert queue_length(1, 0.5) == pytest.approx(0.5)  # Lq = ρ²/(1−ρ)
    assert math.isinf(wait_ratio(4, 4.0))


def test_queue_model_sizes_for_the_load_not_the_ratio() -> None:
    # 4 replicas each running 6 of 8 slots with no queue: the ratio reads 0
    samples = loaded(4, 0.0, 6.0)
    hpa = proportional(samples, 0.1, 4)
    assert hpa.replicas == 0  # the HPA rule would drop to minReplicas and saturate
    p, _ = meridian(samples, "queueComputeRatio", 0.1, 4, 20, AutoscaleState(), 0.0, 0.1, None, P)
    assert p.replicas == fewest(24.0, 0.11)
    assert p.replicas is not None and p.replicas >= 4


def test_queue_model_scales_down_only_with_margin() -> None:
    samples = loaded(10, 0.0, 2.0)  # 20 busy sequences over 10 replicas
    p, _ = meridian(samples, "queueComputeRatio", 0.1, 10, 20, AutoscaleState(), 0.0, 0.1, None, P)
    assert p.replicas == fewest(20.0, 0.09)
    assert p.reason == "QueueModelScaleDown"


def test_a_full_kv_cache_bounds_a_replica_before_its_slots() -> None:
    # 4 of 8 slots busy, and the KV cache full: long prompts make the cache, not the batch, the limit
    def pods(kv_used: float | None) -> list[PodSample]:
        load = PodLoad(
            throughput=1.0, busy=4.0, waiting=0.0, pending=0.0, capacity=8.0, kv_used=kv_used, kv_max=100.0, active=4.0
        )
        return [PodSample(pod=f"p{i}", value=0.0, load=load) for i in range(4)]

    assert effective_slots(pods(100.0), 8) == 4
    assert effective_slots(pods(50.0), 8) == 8  # room for 8 of today's sequences: the slots bound
    assert effective_slots(pods(None), 8) == 8  # no KV metrics (not TensorRT-LLM): the slots
    # a replica just started: KV held by sequences that have not finished yet, so the windowed busy
    # count reads 0; the running count of the same instant says 4 sequences hold half the cache
    fresh = [
        PodSample(pod="new", value=0.0, load=PodLoad(0.0, 0.0, 0.0, 0.0, 8.0, kv_used=50.0, kv_max=100.0, active=4.0))
    ]
    assert effective_slots(fresh, 8) == 8
    full = meridian(pods(100.0), "queueComputeRatio", 0.1, 4, 50, AutoscaleState(), 0.0, 0.1, None, P)[0]
    roomy = meridian(pods(50.0), "queueComputeRatio", 0.1, 4, 50, AutoscaleState(), 0.0, 0.1, None, P)[0]
    assert full.replicas == fewest(16.0, 0.11, slots=4)
    assert roomy.replicas == fewest(16.0, 0.11, slots=8)
    assert full.replicas is not None and roomy.replicas is not None and full.replicas > roomy.replicas


def test_pending_requests_uses_the_queue_length_model() -> None:
    p, _ = meridian(loaded(4, 0.0, 6.0), "pendingRequests", 0.5, 4, 20, AutoscaleState(), 0.0, 0.1, None, P)
    expected = next(n for n in range(1, 100) if queue_length(8, 24.0 / n) <= 0.55)
    assert p.replicas == expected


def test_a_growing_queue_is_seen_before_it_is_served() -> None:
    steady = AutoscaleState(pending=(0.0, 0.0))
    calm = demand(loaded(4, 0.0, 6.0, pending=0.0), steady, 15.0, P)
    burst = demand(loaded(4, 0.0, 6.0, pending=10.0), steady, 15.0, P)
    assert calm is not None and burst is not None
    assert calm.now == pytest.approx(24.0)
    service = 6.0  # busy ÷ throughput
    # 40 pending appeared in 15 s, and the backlog should drain within a minute
    assert burst.now == pytest.approx(24.0 + 40 / 15 * service + 40 * service / 60)
    assert burst.pending == (15.0, 40.0)


def test_served_load_is_smoothed_over_a_minute() -> None:
    state = AutoscaleState(demand=((-45.0, 20.0), (-30.0, 20.0), (-15.0, 20.0)))
    d = demand(loaded(4, 0.0, 10.0), state, 0.0, P)  # a noisy 40 after three 20s
    assert d is not None
    assert d.served == pytest.approx(25.0)
    assert d.history[-1] == (0.0, 40.0)


def test_trend_growth() -> None:
    rising = tuple((float(t), float(t)) for t in range(15, 301, 15))
    assert trend_growth(rising, 300.0, 120.0, 60.0) == pytest.approx(420 / 300)
    falling = tuple((float(t), 400.0 - t) for t in range(15, 301, 15))
    assert trend_growth(falling, 300.0, 120.0, 60.0) == 1.0
    assert trend_growth(rising[:2], 300.0, 120.0, 60.0) == 1.0  # too short to trust
    assert trend_growth(((0.0, 1.0), (10.0, 2.0), (20.0, 3.0)), 20.0, 120.0, 60.0) == 1.0  # too brief


def test_rising_trend_scales_up_ahead() -> None:
    history = tuple((float(t), 10.0 + t / 30) for t in range(-285, 1, 15))  # +2 sequences a minute
    state = AutoscaleState(demand=history[:-1])
    flat = meridian(loaded(4, 2.5, 2.5), "requestRate", 1.0, 4, 50, AutoscaleState(), 0.0, 0.1, None, P)[0]
    ahead = meridian(loaded(4, 2.5, 2.5), "requestRate", 1.0, 4, 50, state, 0.0, 0.1, None, P)[0]
    assert flat.replicas == 10
    assert ahead.replicas is not None and flat.replicas is not None and ahead.replicas > flat.replicas


def test_linear_metrics_scale_proportionally_without_queue_signals() -> None:
    samples = [PodSample(pod=f"p{i}", value=0.9) for i in range(4)]
    p, load = meridian(samples, "kvCacheUtilization", 0.6, 4, 20, AutoscaleState(), 0.0, 0.1, None, P)
    assert load is None
    assert p.replicas == math.ceil(4 * 0.9 / 0.66)


def test_capacity_from_config_when_triton_does_not_expose_it() -> None:
    load = PodLoad(throughput=1.0, busy=6.0, waiting=0.0, pending=0.0, capacity=None)
    samples = [PodSample(pod=f"p{i}", value=0.0, load=load) for i in range(4)]
    without = meridian(samples, "queueComputeRatio", 0.1, 4, 20, AutoscaleState(), 0.0, 0.1, None, P)[0]
    with_cfg = meridian(samples, "queueComputeRatio", 0.1, 4, 20, AutoscaleState(), 0.0, 0.1, 8.0, P)[0]
    assert without.reason.startswith("ProportionalForecast")
    assert with_cfg.reason.startswith("QueueModel")
    assert with_cfg.replicas == fewest(24.0, 0.11)


def test_no_values_no_recommendation() -> None:
    p, load = meridian(
        [PodSample(pod="a", ready=False)], "queueComputeRatio", 1.0, 1, 8, AutoscaleState(), 0.0, 0.1, 8, P
    )
    assert (p.replicas, p.reason, load) == (None, "NoMetrics", None)
