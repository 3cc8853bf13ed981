"""The autoscaling tick: read Triton's metrics from the pods, decide the total, report it in status.

The decision lands in status.autoscaling.recommendedReplicas; reconcile reads it from there and hands
the total to placement, so spec.replicas is never written and GitOps tools see no drift. Written with
its own field manager so reconcile's status writes and this one never remove each other's fields.
A model with minReplicas 0 also has its wake query asked of Prometheus, and goes to zero and back
by autoscale/idle.py; status.autoscaling then says whether it is idle and what wakes it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from meridian.api.modeldeployment import ModelDeployment
from meridian.autoscale import AutoscaleState, Recommendation, RecommenderConfig, step
from meridian.autoscale.idle import IdleMemory, evaluate_idle, idle_event, idle_status, idle_window, wake_signals
from meridian.autoscale.sources import MetricSource, PodRef, source_for
from meridian.autoscale.sources.wake import wake_value
from meridian.reconcile import events
from meridian.reconcile.kube import Kube
from meridian.reconcile.metrics import SCALE_EVENTS
from meridian.runtime.launch import metrics_port
from meridian.sync.observe import pod_ready

FIELD_MANAGER = "meridian-autoscaler"


def pod_refs(pods: list[dict[str, Any]]) -> list[PodRef]:
    """Every live pod (terminating and failed ones left out, as the HPA does)."""
    out = []
    for pod in pods:
        meta, status = pod["metadata"], pod.get("status") or {}
        if meta.get("deletionTimestamp") or status.get("phase") in ("Failed", "Succeeded"):
            continue
        out.append(PodRef(name=meta["name"], ip=status.get("podIP"), ready=pod_ready(pod), uid=meta.get("uid", "")))
    return out


@dataclass
class Autoscalers:
    """Per-ModelDeployment recommender state and metric sources, kept for the process's life."""

    prometheus_url: str = ""
    session: aiohttp.ClientSession | None = None
    states: dict[tuple[str, str], AutoscaleState] = field(default_factory=dict)
    sources: dict[tuple[str, str], tuple[int, MetricSource]] = field(default_factory=dict)
    idle: dict[tuple[str, str], IdleMemory] = field(default_factory=dict)  # scale to zero, minReplicas 0

    def client(self) -> aiohttp.ClientSession:
        """The one HTTP session of every scrape and query, made at first use (inside the event loop)."""
        if self.session is None:
            self.session = aiohttp.ClientSession()
        return self.session

    def source(self, key: tuple[str, str], port: int) -> MetricSource:
        """The model's source, scraping `port`; a new one when the port changed (OpenAI frontend toggled)."""
        if key not in self.sources or self.sources[key][0] != port:
            self.sources[key] = (port, source_for(self.client(), self.prometheus_url, port))
        return self.sources[key][1]

    def forget(self, key: tuple[str, str]) -> None:
        self.states.pop(key, None)
        self.idle.pop(key, None)
        self.sources.pop(key, None)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


async def autoscale_tick(kube: Kube, body: Mapping[str, Any], scalers: Autoscalers, pods: list[dict[str, Any]]) -> bool:
    """One evaluation over the model's `pods` (from the cache); True when the total changed (the
    caller then reconciles the object)."""
    md = ModelDeployment.model_validate(dict(body))
    key = (md.metadata.namespace, md.metadata.name)
    if not md.spec.autoscaling.enabled or md.spec.paused:
        scalers.forget(key)
        return False
    if md.status.observed_generation is None:
        return False  # not reconciled yet: there is no current total to scale from
    now = time.time()
    state = scalers.states.get(key, AutoscaleState())
    source = scalers.source(key, metrics_port(md))
    previous = md.status.autoscaling.last_scale_time if md.status.autoscaling else None
    if idle_window(md.spec.autoscaling) is None:
        scalers.idle.pop(key, None)
        rec, scalers.states[key] = await step(
            md, pod_refs(pods), source, state, now, policy=md.spec.autoscaling.policy, model=md.model_name
        )
        status = rec.status(now, previous).wire()
    else:
        rec, status = await _idle_tick(md, key, scalers, source, pod_refs(pods), state, now, previous)
    status["metricProblems"] = source.problems()
    current = md.status.autoscaling.wire() if md.status.autoscaling else None
    if status != current:
        await kube.apply_status(
            "ModelDeployment", md.metadata.namespace, md.metadata.name, {"autoscaling": status}, FIELD_MANAGER
        )
    if not rec.scale_event:
        return False
    SCALE_EVENTS.labels(rec.direction).inc()
    value = "n/a" if rec.metric_value is None else f"{rec.metric_value:.3g}"
    reason, message = idle_event(rec, md.spec.autoscaling, status.get("wakeValue")) or (
        "ScaledUp" if rec.direction == "up" else "ScaledDown",
        f"{rec.current} → {rec.desired} replicas: {rec.metric} = {value} (target {md.spec.autoscaling.target}); "
        f"{rec.reason}",
    )
    await events.post(kube, md, reason, message)
    return True


async def _idle_tick(
    md: ModelDeployment,
    key: tuple[str, str],
    scalers: Autoscalers,
    source: MetricSource,
    pods: list[PodRef],
    state: AutoscaleState,
    now: float,
    previous: str | None,
) -> tuple[Recommendation, dict[str, Any]]:
    """A model with minReplicas 0: read its pods (if any) and the wake query, then let the idle rule
    decide; its memory lives here and in status.autoscaling (read back after a restart)."""
    spec = md.spec.autoscaling
    current = md.status.desired_replicas
    samples = await source.samples(pods, spec.metric, namespace=md.metadata.namespace, model=md.model_name)
    wake = None
    if spec.wake_on is not None and scalers.prometheus_url:
        wake = await wake_value(scalers.client(), scalers.prometheus_url, spec.wake_on.query)
    memory = scalers.idle.get(key) or IdleMemory.from_status(md.status.autoscaling)
    config = RecommenderConfig(capacity=float(md.spec.runtime.max_batch_size) or None)
    rec, scalers.states[key], scalers.idle[key] = evaluate_idle(
        spec,
        current,
        samples,
        state,
        now,
        memory,
        wake_value=wake,
        spec_replicas=md.spec.replicas,
        policy=spec.policy,
        config=config,
    )
    wake_on = wake_signals(spec, md.metadata.name, md.spec.replicas, bool(scalers.prometheus_url))
    status = rec.status(now, previous).model_copy(update=idle_status(scalers.idle[key], wake, wake_on))
    return rec, status.wire()
