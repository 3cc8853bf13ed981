"""The "meridian" policy: size for the load that is coming, with a queueing model of Triton.

Why not the HPA's proportional rule alone: LLM queue signals are not proportional to load. The
queue/compute ratio sits near 0 until a replica's batch slots are nearly full, then shoots up; the
proportional rule reads "0" as "scale to minReplicas", drops capacity until queues form, then
over-reacts, and every scale-up waits out a cold start of minutes. This policy instead:

1. Estimates the offered load a (sequences wanted at once, Little's law) from the same scrape:
   busy sequences (Δcompute time / Δt, averaged over a minute), plus queue growth (Δpending / Δt ×
   mean service time) so a burst shows before it is served, plus the work to drain the current
   backlog within drain_seconds. Unlike a saturated metric, this keeps growing past full replicas.
2. Forecasts a over horizon_seconds (about one cold start) by a least-squares trend of the served
   load over the last trend_window_seconds: capacity is started before it is needed. Only rising
   trends are acted on early; falls wait for the scale-down stabilization window.
3. For queueing metrics (queueComputeRatio, pendingRequests), with the slots per replica c known,
   picks the fewest replicas whose predicted metric (Erlang C, queueing.py) meets the target. c is
   the engine's batch slots, or fewer when the KV cache holds fewer sequences of today's lengths
   (blocks in use per running sequence, from TensorRT-LLM's KV-cache block metrics): with long
   prompts the cache, not the batch, bounds a replica. Other metrics, or c unknown: the
   proportional rule applied to the forecast load.
4. The tolerance band is kept as hysteresis: scale up when the metric would exceed target × (1 + tol),
   and then to the fewest replicas below that; scale down only to a count that keeps it under
   target × (1 − tol).

Missing data is handled more conservatively than the HPA: any ready pod without data blocks a
scale-down; pods not ready count as capacity on its way with no load (the HPA's net effect).
Stabilization windows, step limits and min/max are applied afterwards exactly as for the HPA.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from meridian.api.modeldeployment import ScalingMetric
from meridian.autoscale.proportional import Proposal, ceil
from meridian.autoscale.queueing import queue_length, wait_ratio
from meridian.autoscale.samples import QUEUEING_METRICS, PodSample
from meridian.autoscale.state import AutoscaleState, TimedFloat


@dataclass(frozen=True, slots=True)
class MeridianParams:
    """Tuning of the meridian policy; the defaults suit LLMs on Triton with minute-long cold starts."""

    horizon_seconds: float = 120.0  # look ahead about one cold start (image, engine load, warm-up)
    trend_window_seconds: float = 300.0  # fit the trend over this much history
    min_trend_span_seconds: float = 60.0  # and only once it covers this much
    drain_seconds: float = 60.0  # a backlog should clear within this
    smoothing_seconds: float = 60.0  # average the served load over this (noise would cost replicas)


@dataclass(frozen=True, slots=True)
class Demand:
    """Load served, offered now and forecast, in concurrent sequences, with the updated history."""

    served: float
    now: float
    forecast: float
    history: tuple[TimedFloat, ...]
    pending: TimedFloat | None


def trend_growth(history: Sequence[TimedFloat], now: float, horizon: float, min_span: float) -> float:
    """How much a least-squares line through the history rises from now to now + horizon, as a factor.

    1.0 when the history is too short to trust, flat or falling: only rises are acted on early.
    """
    if len(history) < 3 or history[-1][0] - history[0][0] < min_span:
        return 1.0
    n = len(history)
    mt = sum(t for t, _ in history) / n
    mv = sum(v for _, v in history) / n
    var = sum((t - mt) ** 2 for t, _ in history)
    slope = sum((t - mt) * (v - mv) for t, v in history) / var if var > 0 else 0.0
    level = mv + slope * (now - mt)
    if slope <= 0 or level <= 0:
        return 1.0
    return (level + slope * horizon) / level


def demand(samples: Sequence[PodSample], state: AutoscaleState, now: float, params: MeridianParams) -> Demand | None:
    """The offered load from the pods' queueing signals, and its forecast; None without signals.

    The served load (busy sequences) is averaged over smoothing_seconds, as rate()[1m] would: a
    15 s window holds few completions, and the scale-down window's maximum would turn that noise
    into idle replicas. The queue terms are taken as they are now, so a burst shows at once.
    """
    loads = [s.load for s in samples if s.ready and s.load is not None]
    if not loads:
        return None
    throughput = sum(load.throughput for load in loads)
    busy = sum(load.busy for load in loads)
    pending = sum(load.pending for load in loads)
    history = (*(h for h in state.demand if h[0] > now - params.trend_window_seconds), (now, busy))
    recent = [v for t, v in history if t > now - params.smoothing_seconds]
    served = sum(recent) / len(recent)
    service = busy / throughput if throughput > 0 else None
    offered = served
    if service is not None:
        if state.pending is not None and now > state.pending[0]:
            offered += (pending - state.pending[1]) / (now - state.pending[0]) * service
        offered += pending * service / params.drain_seconds
    offered = max(offered, 0.0)
    growth = trend_growth(history, now, params.horizon_seconds, params.min_trend_span_seconds)
    return Demand(served, offered, offered * growth, history, (now, pending))


def _fewest_replicas(metric: ScalingMetric, slots: int, load: float, target: float, limit: int) -> int:
    """Fewest replicas (up to `limit`) whose predicted per-replica metric is at most `target`."""
    if load <= 0:
        return 0
    predict = wait_ratio if metric == "queueComputeRatio" else queue_length
    first = max(1, math.floor(load / slots))  # fewer replicas than this are saturated
    for n in range(first, limit + 1):
        if predict(slots, load / n) <= target:
            return n
    return limit


def effective_slots(samples: Sequence[PodSample], slots: int) -> int:
    """Sequences of today's mix of lengths one replica runs at once: its slots, or fewer when its KV
    cache fills first (blocks in use per running sequence, from the pods that report all three).

    Both counts are read at the same instant. The windowed busy count would not do: it grows only as
    requests finish, so a replica just started holds KV for sequences it has not yet counted, reads as
    a tiny cache, and asks for more replicas, which read the same: it ran a model up to maxReplicas."""
    loads = [
        s.load
        for s in samples
        if s.ready and s.load is not None and s.load.kv_max and s.load.kv_used is not None and s.load.active is not None
    ]
    running = sum(load.active or 0.0 for load in loads)
    used = sum(load.kv_used or 0.0 for load in loads)
    if not loads or running <= 0 or used <= 0:
        return slots
    per_replica = sum(load.kv_max or 0.0 for load in loads) / len(loads)
    return max(1, min(slots, math.floor(per_replica / (used / running))))


def meridian(
    samples: Sequence[PodSample],
    metric: ScalingMetric,
    target: float,
    current: int,
    limit: int,
    state: AutoscaleState,
    now: float,
    tolerance: float,
    capacity: float | None,
    params: MeridianParams,
) -> tuple[Proposal, Demand | None]:
    """The meridian recommendation for `current` replicas (before stabilization and step limits)."""
    values = [s.value for s in samples if s.ready and s.value is not None]
    if not values:
        return Proposal(None, None, "NoMetrics"), None
    usage = sum(values) / len(values)
    load = demand(samples, state, now, params)
    slots_seen = [s.load.capacity for s in samples if s.load is not None and s.load.capacity]
    slots = round(max(slots_seen)) if slots_seen else (round(capacity) if capacity else 0)
    search_limit = max(limit, current) + 1

    if metric in QUEUEING_METRICS and load is not None and slots >= 1:
        slots = effective_slots(samples, slots)
        up = _fewest_replicas(metric, slots, load.forecast, target * (1 + tolerance), search_limit)
        down = _fewest_replicas(metric, slots, load.forecast, target * (1 - tolerance), search_limit)
        how = "QueueModel"
    else:
        # Metric ∝ served load: scale it by how much more is wanted (queue growth, backlog, trend).
        growth = max(1.0, load.forecast / load.served) if load is not None and load.served > 0 else 1.0
        total = usage * len(values) * growth
        up, down = ceil(total / (target * (1 + tolerance))), ceil(total / (target * (1 - tolerance)))
        how = "ProportionalForecast"

    if current < up:
        return Proposal(up, usage, f"{how}ScaleUp"), load
    if current > down:
        if any(s.missing for s in samples):
            return Proposal(current, usage, "MissingDataHolds"), load
        return Proposal(down, usage, f"{how}ScaleDown"), load
    return Proposal(current, usage, "WithinTolerance"), load
