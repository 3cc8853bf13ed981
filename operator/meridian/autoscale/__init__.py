"""Autoscaling on Triton's own metrics: metric sources (I/O) feeding a pure recommender.

The operator's timer calls `evaluate` once per autoscaled ModelDeployment with samples from a
source (`ScrapeSource`, or `PrometheusSource` when MERIDIAN_PROMETHEUS_URL is set) and keeps the
returned `AutoscaleState` for the next call. A model with minReplicas 0 goes through
`idle.evaluate_idle` instead, which scales it to zero when idle and back when its wake signal says so.
"""

from meridian.autoscale.behavior import ScalingPolicy
from meridian.autoscale.meridian import MeridianParams
from meridian.autoscale.recommender import (
    DEFAULT_POLICY,
    POLICIES,
    Policy,
    Recommendation,
    RecommenderConfig,
    evaluate,
)
from meridian.autoscale.samples import METRICS, PodLoad, PodSample
from meridian.autoscale.state import AutoscaleState
from meridian.autoscale.step import step

__all__ = [
    "DEFAULT_POLICY",
    "METRICS",
    "POLICIES",
    "AutoscaleState",
    "MeridianParams",
    "PodLoad",
    "PodSample",
    "Policy",
    "Recommendation",
    "RecommenderConfig",
    "ScalingPolicy",
    "evaluate",
    "step",
]
