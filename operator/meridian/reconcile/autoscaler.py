"""The autoscaling tick: read Triton's metrics from the pods, decide the total, report it in status.

The decision lands in status.autoscaling.recommendedReplicas; reconcile reads it from there and hands
the total to placement, so spec.replicas is never written and GitOps tools see no drift. Written with
its own field manager so reconcile's status writes and this one never remove each other's fields.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from meridian.api.modeldeployment import ModelDeployment
from meridian.autoscale import AutoscaleState, step
from meridian.autoscale.sources import MetricSource, PodRef, source_for
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

    def source(self, key: tuple[str, str], port: int) -> MetricSource:
        """The model's source, scraping `port`; a new one when the port changed (OpenAI frontend toggled)."""
        if self.session is None:
            self.session = aiohttp.ClientSession()
        if key not in self.sources or self.sources[key][0] != port:
            self.sources[key] = (port, source_for(self.session, self.prometheus_url, port))
        return self.sources[key][1]

    def forget(self, key: tuple[str, str]) -> None:
        self.states.pop(key, None)
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
    rec, scalers.states[key] = await step(
        md, pod_refs(pods), source, state, now, policy=md.spec.autoscaling.policy, model=md.model_name
    )
    previous = md.status.autoscaling.last_scale_time if md.status.autoscaling else None
    status = rec.status(now, previous).wire()
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
    await events.post(
        kube,
        md,
        "ScaledUp" if rec.direction == "up" else "ScaledDown",
        f"{rec.current} → {rec.desired} replicas: {rec.metric} = {value} (target {md.spec.autoscaling.target}); "
        f"{rec.reason}",
    )
    return True
