"""Seeded request traces for the autoscaling benchmark: a diurnal day with bursts.

Rate λ(t) in requests per second over `hours` (default 24 h), the product of three parts:

- Diurnal cycle, period 24 h: mean × (1 − amplitude × cos(2π (t − 4 h) / 24 h)), so the trough is at
  04:00 and the peak at 16:00. Defaults: mean 10 req/s, amplitude 0.6 (trough 4, peak 16 req/s).
- Slow drift: a mean-reverting random walk of log λ, one step a minute (σ 0.04, reversion 0.1 per
  step), the day-to-day wobble a fitted curve misses.
- Bursts: a Poisson process of burst starts, on average one every 40 min. Each burst multiplies the
  rate by 1 + h, h uniform in [0.5, 1.5], after a 30 s linear ramp; it holds for an exponentially
  distributed time (mean 6 min), then decays exponentially (time constant 2 min). Bursts may overlap
  (their h add).

Arrivals are a Poisson process whose rate is held constant within each second; each request has a
base service time (prompt + generation at batch size 1), lognormal with mean 5 s and σ_log 0.5.
Everything is drawn from one random.Random(seed): the same seed gives the same trace.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class TraceParams:
    hours: float = 24.0
    mean_rate: float = 10.0
    amplitude: float = 0.6
    drift_sigma: float = 0.04
    drift_reversion: float = 0.1
    burst_every_seconds: float = 2_400.0
    burst_height: tuple[float, float] = (0.5, 1.5)
    burst_ramp_seconds: float = 30.0
    burst_hold_mean_seconds: float = 360.0
    burst_decay_seconds: float = 120.0
    service_mean_seconds: float = 5.0
    service_sigma: float = 0.5


@dataclass(frozen=True, slots=True)
class Burst:
    start: float
    height: float
    hold: float


@dataclass(frozen=True, slots=True)
class Trace:
    """Arrival times (sorted) and base service times, with the rate curve they were drawn from."""

    params: TraceParams
    arrivals: list[float]
    services: list[float]
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


def generate(seed: int, params: TraceParams | None = None) -> Trace:
    """Draw a trace; deterministic for a seed."""
    p = params or TraceParams()
    rng = random.Random(seed)
    horizon = p.hours * 3600.0

    bursts: list[Burst] = []
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
    services: list[float] = []
    mu = math.log(p.service_mean_seconds) - p.service_sigma**2 / 2
    for k, rate in enumerate(lam):  # a Poisson process per second at that second's rate
        t = float(k)
        while True:
            t += rng.expovariate(rate)
            if t >= k + 1:
                break
            arrivals.append(t)
            services.append(rng.lognormvariate(mu, p.service_sigma))
    per_minute = [sum(lam[i : i + 60]) / len(lam[i : i + 60]) for i in range(0, len(lam), 60)]
    return Trace(p, arrivals, services, per_minute, bursts)
