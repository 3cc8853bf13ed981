"""Autoscaling benchmark: Meridian's policy against baselines set up as their users set them up.

Run `python bench/autoscale.py` (`--help` for options; `make bench-autoscale` also draws the plots).
Prints one JSON line per (trace, policy setting), then per trace one line per policy family with its
Pareto frontier, and one line per meridian or reference setting with its replica-hours ÷ those of the
cheapest baseline setting that misses the SLO for no more minutes; the documented meridian setting's
line is the "headline". Deterministic for a seed; about 20 minutes of one core for both traces.

Traces: traces.py ("diurnal": our synthetic day with bursts; "production": shaped by the Azure LLM
inference trace 2023's conversation statistics). Serving: serving.py (TensorRT-LLM in-flight batching
with KV-cache limits, a bounded queue and a client timeout, random routing, cold starts of 90–180 s).

Every policy runs on the same trace, seed, cold starts, sync period (15 s), tolerance (0.1), step
limits (up max(+4 pods, +100 %) per 15 s, down 100 % per 15 s), stabilization (up 0 s, down 300 s)
and bounds (1..256), and each is swept over its target:
- hpa-<metric>: the Kubernetes HPA rule (meridian.autoscale.proportional) on one of Triton's signals:
  gpuUtilization, pendingRequests (per replica), kvCacheUtilization, queueComputeRatio.
- hpa-inFlightRequests: target in-flight requests per replica (running + queued), the concurrency
  target KServe's KPA or a KEDA Prometheus trigger scales on; run by the same HPA rule (KEDA hands
  its metric to an HPA; the KPA's panic mode is not modelled, its step limits being the ones all
  share here).
- meridian: Meridian's policy (meridian.autoscale.meridian) on queueComputeRatio, swept too, so its
  frontier is drawn like the others; the headline uses its documented setting (DEFAULT_TARGET).
Two references, not baselines, sized from the trace itself instead of metrics, with the same 300 s
hold on scale-down, show what is left to win: nowcast knows exactly the work in flight now (what a
fixed headroom over a perfect reading of the present costs), clairvoyant also that of the next
worst-case cold start plus one sync period (what foresight would buy).
Time here is simulated, so a run is exact and repeats itself: instead of repetitions, `--seed`
draws another trace, to tell a policy's edge from one draw's luck.

SLO: for each minute, the 95th percentile time to first token (queue wait + prefill) of the requests
that arrived in it is at most 2 s; a rejected or timed-out request has no first token and counts as
over. slo_violation_minutes counts the minutes that miss. replica_hours is GPU replicas × hours billed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent))

import frontier
import serving
import traces
from meridian.api.modeldeployment import Autoscaling, ScalingMetric
from meridian.autoscale import AutoscaleState, PodSample, Policy, RecommenderConfig, evaluate
from meridian.autoscale.sources.derive import pod_sample
from meridian.autoscale.sources.rates import CounterRateTracker
from meridian.autoscale.sources.triton import TritonScrape

SYNC_SECONDS = 15.0
SLO_TTFT_SECONDS = 2.0
SLO_QUANTILE = 0.95
INITIAL_REPLICAS = 8
MIN_REPLICAS, MAX_REPLICAS = 1, 256  # far above any setting's need: a bound would cut the costly settings' bill
DEFAULT_TARGET = 0.01  # the meridian setting the headline reports (queueComputeRatio)

Rule = Policy | Literal["clairvoyant", "nowcast"]


@dataclass(frozen=True, slots=True)
class Setup:
    """One policy setting: a family (how it scales), its metric and its target."""

    family: str
    policy: Rule
    metric: ScalingMetric
    target: float

    @property
    def label(self) -> str:
        return f"{self.family}@{self.target:g}"


SWEEPS: dict[str, tuple[Rule, ScalingMetric, tuple[float, ...]]] = {
    "hpa-gpuUtilization": ("hpa", "gpuUtilization", (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)),
    "hpa-pendingRequests": ("hpa", "pendingRequests", (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)),
    "hpa-kvCacheUtilization": ("hpa", "kvCacheUtilization", (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)),
    "hpa-queueComputeRatio": ("hpa", "queueComputeRatio", (0.003, 0.01, 0.03, 0.1, 0.3)),
    "hpa-inFlightRequests": ("hpa", "inFlightRequests", (4.0, 6.0, 8.0, 10.0, 12.0, 14.0)),
    "meridian": ("meridian", "queueComputeRatio", (0.001, 0.003, 0.01, 0.03, 0.1)),
    # references, not baselines: sized from the trace itself, exactly, rather than from metrics;
    # nowcast knows the work in flight now, clairvoyant also that of the next worst cold start + sync
    "nowcast": ("nowcast", "inFlightRequests", (3.0, 4.0, 5.0, 6.0, 8.0)),
    "clairvoyant": ("clairvoyant", "inFlightRequests", (5.0, 6.0, 7.0, 8.0, 10.0)),
}
REFERENCES = ("meridian", "nowcast", "clairvoyant")  # never counted as baselines
ORACLE_AHEAD = {"nowcast": 0, "clairvoyant": int(serving.COLD_START_S[1] + SYNC_SECONDS)}


def setups(families: Iterable[str] | None = None) -> list[Setup]:
    return [
        Setup(family, policy, metric, target)
        for family, (policy, metric, targets) in SWEEPS.items()
        if families is None or family in families
        for target in targets
    ]


@dataclass
class Result:
    trace: str
    setup: Setup
    replica_hours: float
    slo_violation_minutes: int
    scale_events: int
    peak_replicas: int
    p95_ttft_s: float
    rejected: int
    timed_out: int
    requests: int

    def line(self) -> dict[str, Any]:
        return {
            "trace": self.trace,
            "policy": self.setup.family,
            "metric": self.setup.metric,
            "target": self.setup.target,
            "replica_hours": round(self.replica_hours, 2),
            "slo_violation_minutes": self.slo_violation_minutes,
            "scale_events": self.scale_events,
            "peak_replicas": self.peak_replicas,
            "p95_ttft_s": round(self.p95_ttft_s, 3) if math.isfinite(self.p95_ttft_s) else None,
            "rejected": self.rejected,
            "timed_out": self.timed_out,
            "requests": self.requests,
        }

    @property
    def point(self) -> frontier.Point:
        return frontier.Point(self.setup.family, self.setup.target, self.replica_hours, self.slo_violation_minutes)


def quantile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1)]


def sample(
    name: str, metric: ScalingMetric, scrape: TritonScrape, tracker: CounterRateTracker, now: float
) -> PodSample:
    """One ready pod as Meridian's direct scrape would report it."""
    inc = tracker.observe(name, scrape.counters, now)
    return pod_sample(name, metric, scrape, inc)


def in_flight_per_second(trace: traces.Trace, per_replica: float) -> list[int]:
    """The work in flight at each second of the trace: requests arrived and not yet finished, each
    taking the service time it would have on a replica running `per_replica` sequences."""
    seconds = math.ceil(trace.seconds) + 1
    delta = [0] * (seconds + 1)
    slowdown = 1.0 + serving.TPOT_SLOWDOWN * min(1.0, per_replica / serving.SLOTS)
    for arrival, prompt, output in zip(trace.arrivals, trace.prompts, trace.outputs, strict=True):
        end = arrival + prompt / serving.PREFILL_TOKENS_PER_S + output * serving.TPOT_S * slowdown
        delta[int(arrival)] += 1
        delta[min(seconds, int(end) + 1)] -= 1
    out, running = [], 0
    for d in delta[:seconds]:
        running += d
        out.append(running)
    return out


def oracle_plan(trace: traces.Trace, per_replica: float, ahead: int) -> list[int]:
    """Replicas for each second, from the trace itself rather than from metrics: enough that the work
    in flight is at most `per_replica` a replica at every second from the scale-down window's start
    (300 s back, as every policy here holds a scale-down) to `ahead` seconds on."""
    load = in_flight_per_second(trace, per_replica)
    behind = 300
    window: deque[int] = deque()  # indices of a sliding-window maximum over [t - behind, t + ahead]
    plan = [0] * len(load)
    for t in range(len(load) + ahead):
        if t < len(load):
            while window and load[window[-1]] <= load[t]:
                window.pop()
            window.append(t)
        at = t - ahead
        if at < 0:
            continue
        while window[0] < at - behind:
            window.popleft()
        plan[at] = min(MAX_REPLICAS, max(MIN_REPLICAS, math.ceil(load[window[0]] / per_replica)))
    return plan


def simulate(trace: traces.Trace, setup: Setup, seed: int, timeline: list[dict[str, Any]] | None = None) -> Result:
    cluster = serving.Cluster(seed)
    for _ in range(INITIAL_REPLICAS):
        cluster.add(0.0, cold_start=False)
    plan = oracle_plan(trace, setup.target, ORACLE_AHEAD[setup.policy]) if setup.policy in ORACLE_AHEAD else []
    spec = Autoscaling(
        enabled=True, min_replicas=MIN_REPLICAS, max_replicas=MAX_REPLICAS, metric=setup.metric, target=setup.target
    )
    tracker = CounterRateTracker()
    state = AutoscaleState()
    config = RecommenderConfig()
    minutes: list[list[float]] = [[] for _ in range(math.ceil(trace.seconds / 60.0))]
    ttfts: list[float] = []
    rejected = timed_out = scale_events = 0
    peak = len(cluster.replicas)
    next_eval = SYNC_SECONDS

    def autoscale(now: float) -> None:
        nonlocal state, scale_events, peak
        cluster.promote(now)
        samples = [
            sample(r.name, setup.metric, r.scrape(now), tracker, now)
            if r.ready_at <= now
            else PodSample(r.name, ready=False)
            for r in cluster.replicas
        ]
        tracker.retain(r.name for r in cluster.replicas)
        current = len(cluster.replicas)
        if plan:
            desired = plan[min(len(plan) - 1, int(now))]
        else:
            rec, state = evaluate(spec, current, samples, state, now, policy=setup.policy, config=config)
            desired = rec.desired
        if desired != current:
            scale_events += 1
            for _ in range(desired - current):
                cluster.add(now)
            for _ in range(current - desired):
                cluster.remove(now)
            peak = max(peak, len(cluster.replicas))
        if timeline is not None:
            timeline.append({"t": now, "replicas": current, "desired": desired, "ready": len(cluster.serving)})

    for arrival, prompt, output in zip(trace.arrivals, trace.prompts, trace.outputs, strict=True):
        while arrival >= next_eval:
            autoscale(next_eval)
            next_eval += SYNC_SECONDS
        cluster.promote(arrival)
        ttft = cluster.route().admit(arrival, prompt, output)
        if ttft == serving.REJECTED:
            rejected += 1
            ttft = math.inf
        elif ttft == serving.TIMED_OUT:
            timed_out += 1
            ttft = math.inf
        minutes[int(arrival // 60.0)].append(ttft)
        ttfts.append(ttft)
    while next_eval <= trace.seconds:
        autoscale(next_eval)
        next_eval += SYNC_SECONDS

    violations = 0
    for i, bucket in enumerate(minutes):
        p95 = quantile(sorted(bucket), SLO_QUANTILE)
        if bucket and p95 > SLO_TTFT_SECONDS:
            violations += 1
        if timeline is not None:
            timeline.append({"minute": i, "rate": trace.rate_per_minute[i], "p95_ttft": p95})
    ttfts.sort()
    return Result(
        trace=trace.name,
        setup=setup,
        replica_hours=cluster.close(trace.seconds),
        slo_violation_minutes=violations,
        scale_events=scale_events,
        peak_replicas=peak,
        p95_ttft_s=quantile(ttfts, 0.95),
        rejected=rejected,
        timed_out=timed_out,
        requests=len(ttfts),
    )


def summary(trace: str, results: Sequence[Result]) -> list[dict[str, Any]]:
    """Per family its frontier; then each reference setting's replica-hours ÷ those of the cheapest
    baseline setting that misses the SLO for no more minutes, the documented meridian one as "headline"."""
    lines: list[dict[str, Any]] = []
    families = sorted({r.setup.family for r in results})
    for family in families:
        front = frontier.frontier(r.point for r in results if r.setup.family == family)
        lines.append(
            {
                "trace": trace,
                "frontier": family,
                "points": [[p.target, round(p.replica_hours, 2), p.violation_minutes] for p in front],
            }
        )
    baselines = [r.point for r in results if r.setup.family not in REFERENCES]
    for r in results:  # every reference setting against the baselines, the documented one marked
        if r.setup.family not in REFERENCES or not baselines:
            continue
        h = frontier.headline(r.point, baselines)
        b = h.baseline
        documented = r.setup.family == "meridian" and r.setup.target == DEFAULT_TARGET
        lines.append(
            {
                "trace": trace,
                "headline" if documented else "ratio_of": r.setup.label,
                "ratio": round(h.ratio, 3) if h.ratio is not None else None,
                "replica_hours": round(r.replica_hours, 2),
                "slo_violation_minutes": r.slo_violation_minutes,
                "best_baseline": [b.family, b.target, round(b.replica_hours, 2), b.violation_minutes] if b else None,
            }
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--trace", action="append", choices=traces.TRACES, help="only these (default: both)")
    parser.add_argument("--policy", action="append", choices=list(SWEEPS), help="only these families (default: all)")
    parser.add_argument("--plots", type=Path, help="write PNG plots to this directory (needs matplotlib)")
    args = parser.parse_args(argv)

    for name in args.trace or traces.TRACES:
        trace = traces.generate(args.seed, name, hours=args.hours)
        results: list[Result] = []
        for setup in setups(args.policy):
            started = time.perf_counter()
            results.append(simulate(trace, setup, args.seed))
            print(json.dumps(results[-1].line() | {"seconds": round(time.perf_counter() - started, 1)}), flush=True)
        for line in summary(name, results):
            print(json.dumps(line), flush=True)
        if args.plots:
            import plots

            plots.draw(args.plots, trace, results, simulate, args.seed, DEFAULT_TARGET)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
