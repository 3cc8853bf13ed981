"""Scale to zero: when an autoscaled model with minReplicas 0 goes idle, and what wakes it. Pure.

Activity is evidence of demand at one evaluation: spec.autoscaling.wakeOn's query (a value that needs
no pod, such as the Gateway's request rate) above its threshold, or the pods serving requests. With a
wake query, the query decides idleness (requests that never reach a pod are demand too); without one,
the pods' request counters do. No evidence either way (Prometheus down, metrics unreadable) never idles
a model: as the HPA, never scale down blind.

A model quiet for idleSeconds goes to 0. An idle model wakes to one replica when the query rises above
its threshold, or to spec.replicas (within [1, maxReplicas]) when that changed since it went idle
(`kubectl scale`); the metric recommender then takes over from a fresh state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from meridian.api.modeldeployment import Autoscaling, AutoscalingStatus
from meridian.autoscale.recommender import DEFAULT_POLICY, Policy, Recommendation, RecommenderConfig, evaluate
from meridian.autoscale.samples import PodSample
from meridian.autoscale.state import AutoscaleState
from meridian.timestamps import iso, seconds

DEFAULT_IDLE_SECONDS: Final = 300
Activity = Literal["active", "quiet", "unknown"]


@dataclass(frozen=True, slots=True)
class IdleMemory:
    """What carries from one evaluation to the next; kept in status.autoscaling so it survives a restart.

    last_active: when demand was last seen. idle_since: when the model went to 0 (None while it runs).
    spec_replicas: spec.replicas when it went idle, so that a `kubectl scale` can be told apart.
    """

    last_active: float | None = None
    idle_since: float | None = None
    spec_replicas: int | None = None

    @classmethod
    def from_status(cls, status: AutoscalingStatus | None) -> IdleMemory:
        if status is None:
            return cls()
        return cls(
            seconds(status.last_active_time),
            seconds(status.idle_since) if status.idle else None,
            status.idle_spec_replicas if status.idle else None,
        )


@dataclass(frozen=True, slots=True)
class Signals:
    """One evaluation's inputs. wake_value: the wake query's value, None without a query or an answer;
    served: requests per second the ready pods served, None when any of them cannot tell."""

    wake_value: float | None = None
    served: float | None = None
    spec_replicas: int = 1


@dataclass(frozen=True, slots=True)
class IdleDecision:
    """desired None leaves the total to the metric recommender."""

    desired: int | None
    reason: str
    memory: IdleMemory


def idle_window(spec: Autoscaling) -> int | None:
    """Seconds without demand before scaling to zero; None when the model may not go to zero."""
    if not spec.enabled or spec.min_replicas > 0:
        return None
    return spec.idle_seconds or DEFAULT_IDLE_SECONDS


def served(samples: Sequence[PodSample], metric: str) -> float | None:
    """Requests per second the ready pods served, from their queueing signals or a requestRate metric."""
    rates: list[float] = []
    for s in samples:
        if not s.ready:
            continue
        if s.load is not None:
            rates.append(s.load.throughput)
        elif metric == "requestRate" and s.value is not None:
            rates.append(s.value)
        else:
            return None
    return sum(rates) if rates else None


def activity(spec: Autoscaling, signals: Signals) -> Activity:
    threshold = spec.wake_on.threshold if spec.wake_on else 0.0
    if signals.wake_value is not None and signals.wake_value > threshold:
        return "active"
    if signals.served is not None and signals.served > 0:
        return "active"
    evidence = signals.wake_value if spec.wake_on is not None else signals.served
    return "quiet" if evidence is not None else "unknown"


def decide(spec: Autoscaling, current: int, signals: Signals, memory: IdleMemory, now: float) -> IdleDecision:
    """Go idle, stay idle, wake, or (desired None) run under the metric recommender."""
    window = idle_window(spec) or DEFAULT_IDLE_SECONDS
    act = activity(spec, signals)
    if current == 0:
        if act == "active":
            return IdleDecision(1, "WakeQueryAboveThreshold", IdleMemory(last_active=now))
        scaled = memory.spec_replicas is not None and signals.spec_replicas != memory.spec_replicas
        if scaled and signals.spec_replicas >= 1:
            return IdleDecision(min(signals.spec_replicas, spec.max_replicas), "ScaledByUser", IdleMemory(now))
        since = memory.idle_since if memory.idle_since is not None else now
        return IdleDecision(0, "Idle", IdleMemory(memory.last_active, since, signals.spec_replicas))
    last = now if act == "active" or memory.last_active is None else memory.last_active
    if act == "quiet" and now - last >= window:
        return IdleDecision(0, "IdleScaledToZero", IdleMemory(last, now, signals.spec_replicas))
    return IdleDecision(None, "", IdleMemory(last_active=last))


def evaluate_idle(
    spec: Autoscaling,
    current: int,
    samples: Sequence[PodSample],
    state: AutoscaleState,
    now: float,
    memory: IdleMemory,
    *,
    wake_value: float | None = None,
    spec_replicas: int = 1,
    policy: Policy = DEFAULT_POLICY,
    config: RecommenderConfig | None = None,
) -> tuple[Recommendation, AutoscaleState, IdleMemory]:
    """`evaluate` for a model with minReplicas 0: the idle rule decides 0 and back; while the model
    runs, the metric recommender works with a floor of one replica (metrics need a pod)."""
    signals = Signals(wake_value, served(samples, spec.metric), spec_replicas)
    d = decide(spec, current, signals, memory, now)
    if d.desired is not None:
        rec = Recommendation(d.desired, current, spec.metric, None, None, d.reason, policy)
        return rec, AutoscaleState(), d.memory
    floor = spec.model_copy(update={"min_replicas": max(1, spec.min_replicas)})
    rec, state = evaluate(floor, current, samples, state, now, policy=policy, config=config)
    return rec, state, d.memory


def idle_event(rec: Recommendation, spec: Autoscaling, wake_value: float | None) -> tuple[str, str] | None:
    """The Event for a scale to or from zero (reason, message); None for the metric recommender's."""
    window = idle_window(spec) or DEFAULT_IDLE_SECONDS
    value = "n/a" if wake_value is None else f"{wake_value:.3g}"
    if rec.reason == "IdleScaledToZero":
        return "ScaledToZero", f"{rec.current} → 0 replicas: no requests for {window}s (idleSeconds)"
    if rec.reason == "WakeQueryAboveThreshold" and spec.wake_on is not None:
        return "WokenUp", f"0 → {rec.desired} replicas: wakeOn query = {value} > {spec.wake_on.threshold:g}"
    if rec.reason == "ScaledByUser":
        return "WokenUp", f"0 → {rec.desired} replicas: spec.replicas changed while idle (kubectl scale)"
    return None


def wake_signals(spec: Autoscaling, name: str, spec_replicas: int, prometheus: bool) -> list[str]:
    """What wakes the model, as a person would do or watch it."""
    out = []
    if spec.wake_on is not None:
        where = "" if prometheus else " (not evaluated: the operator has no MERIDIAN_PROMETHEUS_URL)"
        out.append(f"{spec.wake_on.query} > {spec.wake_on.threshold:g}{where}")
    out.append(f"kubectl scale modeldeployment/{name} --replicas=N (N ≥ 1, N ≠ spec.replicas {spec_replicas})")
    return out


def idle_status(memory: IdleMemory, wake_value: float | None, wake_on: list[str]) -> dict[str, Any]:
    """The status.autoscaling fields of scale to zero (snake_case, for AutoscalingStatus)."""
    idle = memory.idle_since is not None
    return {
        "idle": idle,
        "idle_since": iso(memory.idle_since) if memory.idle_since is not None else None,
        "last_active_time": iso(memory.last_active) if memory.last_active is not None else None,
        "wake_value": wake_value,
        "wake_on": wake_on,
        "idle_spec_replicas": memory.spec_replicas if idle else None,
    }


def wake_problems(spec: Autoscaling, prometheus: bool) -> list[str]:
    """A wake query the operator cannot ask: the model could go idle with nothing to bring it back."""
    if spec.enabled and spec.wake_on is not None and not prometheus:
        return [
            "spec.autoscaling.wakeOn.query needs Prometheus, and the operator has no MERIDIAN_PROMETHEUS_URL: "
            "set it (Helm value operator.prometheusUrl), or remove wakeOn and wake the model with kubectl scale"
        ]
    return []
