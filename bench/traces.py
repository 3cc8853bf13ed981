"""Seeded request traces for the autoscaling benchmark: arrivals with prompt and output lengths.

Two traces, each a rate curve λ(t) (requests per second, constant within a second) times token
lengths per request; arrivals are a Poisson process at that rate. Everything is drawn from one
random.Random(seed): the same seed gives the same trace.

"diurnal" (our synthetic day, 24 h):
- Diurnal cycle: mean × (1 − amplitude × cos(2π (t − 4 h) / 24 h)), trough at 04:00, peak at 16:00.
  Mean 10 req/s, amplitude 0.6 (trough 4, peak 16 req/s).
- Slow drift: a mean-reverting random walk of log λ, one step a minute (σ 0.04, reversion 0.1).
- Bursts: a Poisson process of burst starts, one every 40 min on average. Each multiplies the rate by
  1 + h, h uniform in [0.5, 1.5], after a 30 s linear ramp; it holds for an exponential time (mean
  6 min), then decays exponentially (time constant 2 min). Bursts may overlap (their h add).
- Lengths: prompt lognormal (median 400 tokens, σ_log 0.9), output lognormal (median 250, σ_log 0.7),
  each capped at 8,192 and 2,048.

"production" (shaped by a published production trace, 24 h):
- Token lengths from the Azure LLM inference trace 2023, conversation service, as published with
  Splitwise (Patel et al., ISCA 2024; github.com/Azure/AzurePublicDataset): median prompt 1,020
  tokens and median output 129 tokens. The paper gives medians and CDFs, not fitted parameters: we
  draw lognormals with those medians and spreads (σ_log 0.9 prompt, 1.0 output) that give its long
  tails, capped at 8,192 and 2,048.
- Rate: that trace's conversation hour averages about 5.5 req/s; we serve three times it (16.5 req/s
  mean, a fleet of a few such tenants) over a 24 h cycle of amplitude 0.5, and, as in the published
  per-minute rates, much more minute-to-minute variation than Poisson: each minute's rate is the
  cycle times a lognormal factor (σ_log 0.25), mean-reverting (0.3 a minute), with no
  separate bursts.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

DAY = 86_400.0
TraceName = Literal["diurnal", "production"]
TRACES: tuple[TraceName, ...] = ("diurnal", "production")


@dataclass(frozen=True, slots=True)
class TraceParams:
    hours: float = 24.0
    mean_rate: float = 10.0
    amplitude: float = 0.6
    drift_sigma: float = 0.04
    drift_reversion: float = 0.1
    burst_every_seconds: float = 2_400.0  # 0 disables bursts
    burst_height: tuple[float, float] = (0.5, 1.5)
    burst_ramp_seconds: float = 30.0
    burst_hold_mean_seconds: float = 360.0
    burst_decay_seconds: float = 120.0
    prompt_median: float = 400.0
    prompt_sigma: float = 0.9
    output_median: float = 250.0
    output_sigma: float = 0.7
    prompt_cap: int = 8_192
    output_cap: int = 2_048


PARAMS: dict[TraceName, TraceParams] = {
    "diurnal": TraceParams(),
    "production": TraceParams(
        mean_rate=16.5,
        amplitude=0.5,
        drift_sigma=0.25 * math.sqrt(1 - 0.7**2),  # stationary σ_log 0.25 with reversion 0.3
        drift_reversion=0.3,
        burst_every_seconds=0.0,
        prompt_median=1_020.0,
        prompt_sigma=0.9,
        output_median=129.0,
        output_sigma=1.0,
    ),
}


@dataclass(frozen=True, slots=True)
class Burst:
    start: float
    height: float
    hold: float


@dataclass(frozen=True, slots=True)
class Trace:
    """Arrival times (sorted) with each request's prompt and output tokens, and the rate curve."""

    name: str
    params: TraceParams
    arrivals: list[float]
    prompts: list[int]
    outputs: list[int]
    rate_per_minute: list[float]
    bursts: list[Burst]

    @property
    def seconds(self) -> float:
        return self.params.hours * 3600.0


def rate_curve(p: TraceParams, bursts: list[Burst], drift: list[float]) -> list[float]:
    """λ for each second of the trace (piecewise constant within a second)."""
    seconds = math.ceil(p.hours * 3600.0)
    lam = []
    for k in range(seconds):
        at = k + 0.5
        diurnal = p.mean_rate * (1.0 - p.amplitude * math.cos(2 * math.pi * (at - 4 * 3600.0) / DAY))
        m = at / 60.0
        i = int(m)
        lam.append(diurnal * (drift[i] + (drift[i + 1] - drift[i]) * (m - i)))
    extra = [0.0] * seconds
    for b in bursts:
        tail = p.burst_ramp_seconds + b.hold + 10 * p.burst_decay_seconds
        for k in range(int(b.start), min(seconds, int(b.start + tail) + 1)):
            dt = k + 0.5 - b.start
            if dt < 0:
                continue
            if dt < p.burst_ramp_seconds:
                extra[k] += b.height * dt / p.burst_ramp_seconds
            elif dt < p.burst_ramp_seconds + b.hold:
                extra[k] += b.height
            else:
                extra[k] += b.height * math.exp(-(dt - p.burst_ramp_seconds - b.hold) / p.burst_decay_seconds)
    return [r * (1.0 + e) for r, e in zip(lam, extra, strict=True)]


def _length(rng: random.Random, median: float, sigma: float, cap: int) -> int:
    return max(1, min(cap, round(rng.lognormvariate(math.log(median), sigma))))


def generate(seed: int, name: TraceName = "diurnal", hours: float = 24.0) -> Trace:
    """Draw a trace; deterministic for a seed."""
    p = TraceParams(**{**{f: getattr(PARAMS[name], f) for f in TraceParams.__dataclass_fields__}, "hours": hours})
    rng = random.Random(seed)
    horizon = p.hours * 3600.0

    bursts: list[Burst] = []
    if p.burst_every_seconds > 0:
        t = rng.expovariate(1.0 / p.burst_every_seconds)
        while t < horizon:
            bursts.append(Burst(t, rng.uniform(*p.burst_height), rng.expovariate(1.0 / p.burst_hold_mean_seconds)))
            t += rng.expovariate(1.0 / p.burst_every_seconds)

    minutes = math.ceil(horizon / 60.0)
    drift, log_drift = [], 0.0
    for _ in range(minutes + 2):
        drift.append(math.exp(log_drift))
        log_drift += -p.drift_reversion * log_drift + rng.gauss(0.0, p.drift_sigma)
    lam = rate_curve(p, bursts, drift)

    arrivals: list[float] = []
    prompts: list[int] = []
    outputs: list[int] = []
    for k, rate in enumerate(lam):  # a Poisson process per second at that second's rate
        t = float(k)
        while True:
            t += rng.expovariate(rate)
            if t >= k + 1:
                break
            arrivals.append(t)
            prompts.append(_length(rng, p.prompt_median, p.prompt_sigma, p.prompt_cap))
            outputs.append(_length(rng, p.output_median, p.output_sigma, p.output_cap))
    per_minute = [sum(lam[i : i + 60]) / len(lam[i : i + 60]) for i in range(0, len(lam), 60)]
    return Trace(name, p, arrivals, prompts, outputs, per_minute, bursts)
