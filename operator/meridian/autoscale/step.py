"""One timer tick for one ModelDeployment: read its pods' metrics, then evaluate (the only I/O is the read).

The operator keeps, per autoscaled ModelDeployment, an `AutoscaleState` and (for the direct scrape) a
`ScrapeSource`, e.g. in kopf's per-object memo, and on each tick (settings.autoscale_interval_seconds)
calls `step`, writes `rec.status(now, previous lastScaleTime)` to status.autoscaling and `rec.desired`
to status.desiredReplicas, hands `rec.desired` to placement, and emits an Event when
`rec.scale_event`. spec.replicas is never written.
"""

from __future__ import annotations

from collections.abc import Sequence

from meridian.api.modeldeployment import ModelDeployment
from meridian.autoscale.recommender import Policy, Recommendation, RecommenderConfig, evaluate
from meridian.autoscale.sources.base import MetricSource, PodRef
from meridian.autoscale.state import AutoscaleState


async def step(
    md: ModelDeployment,
    pods: Sequence[PodRef],
    source: MetricSource,
    state: AutoscaleState,
    now: float,
    *,
    policy: Policy | None = None,
    config: RecommenderConfig | None = None,
    model: str | None = None,
) -> tuple[Recommendation, AutoscaleState]:
    """Sample `pods` (every pod of `md`, ready or not) and decide its replica total.

    The current total is status.desiredReplicas (what was last handed to placement). The replica's
    slots for the meridian policy's queue model default to spec.runtime.maxBatchSize.
    """
    spec = md.spec.autoscaling
    samples = await source.samples(pods, spec.metric, namespace=md.metadata.namespace, model=model)
    cfg = config or RecommenderConfig(capacity=float(md.spec.runtime.max_batch_size) or None)
    return evaluate(spec, md.status.desired_replicas, samples, state, now, policy=policy or spec.policy, config=cfg)
