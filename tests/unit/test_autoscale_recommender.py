"""evaluate(): bounds, windows, missing data and state, for both policies, plus properties."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meridian.api.modeldeployment import Autoscaling, ModelDeployment, ScalingMetric
from meridian.autoscale import AutoscaleState, PodLoad, PodSample, Policy, RecommenderConfig, evaluate, step
from meridian.autoscale.behavior import ScalingPolicy
from meridian.autoscale.sources import PodRef

pytestmark = pytest.mark.unit

BOTH: list[Policy] = ["hpa", "meridian"]


def spec(**kw: Any) -> Autoscaling:
    base: dict[str, Any] = {
        "enabled": True,
        "minReplicas": 1,
        "maxReplicas": 20,
        "metric": "requestRate",
        "target": 1.0,
    }
    return Autoscaling.model_validate(base | kw)


def pods(*values: float | None, unready: int = 0) -> list[PodSample]:
    ready = [PodSample(pod=f"p{i}", value=v) for i, v in enumerate(values)]
    return ready + [PodSample(pod=f"u{i}", ready=False) for i in range(unready)]


@pytest.mark.parametrize("policy", BOTH)
def test_scale_up_is_immediate(policy: Policy) -> None:
    rec, state = evaluate(spec(), 2, pods(3.0, 3.0), AutoscaleState(), 1000.0, policy=policy)
    assert rec.desired == 6
    assert rec.scale_event and rec.direction == "up"
    assert rec.metric == "requestRate" and rec.metric_value == pytest.approx(3.0)
    assert state.scale_up_events == ((1000.0, 4),)


@pytest.mark.parametrize("policy", BOTH)
def test_scale_down_waits_for_the_window(policy: Policy) -> None:
    s = spec(scaleDownStabilizationSeconds=300)
    state = AutoscaleState()
    rec, state = evaluate(s, 6, pods(*[0.3] * 6), state, 0.0, policy=policy)
    assert rec.desired == 6  # fresh state remembers the current count: no scale-down after a restart
    assert rec.reason == "ScaleDownStabilized"
    for t in range(15, 300, 15):
        rec, state = evaluate(s, 6, pods(*[0.3] * 6), state, float(t), policy=policy)
        assert rec.desired == 6, t
    rec, state = evaluate(s, 6, pods(*[0.3] * 6), state, 300.0, policy=policy)  # the seed is 300 s old: out
    assert rec.desired == 2
    assert rec.direction == "down"


@pytest.mark.parametrize("policy", BOTH)
def test_scale_up_window_holds_until_the_load_lasts(policy: Policy) -> None:
    s = spec(scaleUpStabilizationSeconds=60)
    state = AutoscaleState()
    rec, state = evaluate(s, 2, pods(1.0, 1.0), state, 0.0, policy=policy)
    assert rec.desired == 2
    rec, state = evaluate(s, 2, pods(3.0, 3.0), state, 15.0, policy=policy)
    assert (rec.desired, rec.reason) == (2, "ScaleUpStabilized")
    for t in (30.0, 45.0, 60.0):
        rec, state = evaluate(s, 2, pods(3.0, 3.0), state, t, policy=policy)
    assert rec.desired == 6


@pytest.mark.parametrize("policy", BOTH)
def test_step_limit_on_scale_up(policy: Policy) -> None:
    rec, state = evaluate(spec(maxReplicas=100), 3, pods(20.0, 20.0, 20.0), AutoscaleState(), 0.0, policy=policy)
    assert (rec.desired, rec.reason) == (7, "ScaleUpLimit")  # +4 beats ×2 at 3 replicas
    rec, _ = evaluate(spec(maxReplicas=100), 7, pods(*[20.0] * 7), state, 5.0, policy=policy)
    assert rec.desired == 7  # that period's allowance is spent
    rec, _ = evaluate(spec(maxReplicas=100), 7, pods(*[20.0] * 7), state, 16.0, policy=policy)
    assert rec.desired == 14


def test_custom_step_policies() -> None:
    cfg = RecommenderConfig(scale_down_policies=(ScalingPolicy("Pods", 1, 60),))
    s = spec(scaleDownStabilizationSeconds=0)
    rec, state = evaluate(s, 10, pods(*[0.1] * 10), AutoscaleState(), 0.0, policy="hpa", config=cfg)
    assert (rec.desired, rec.reason) == (9, "ScaleDownLimit")
    rec, _ = evaluate(s, 9, pods(*[0.1] * 9), state, 30.0, policy="hpa", config=cfg)
    assert (rec.desired, rec.reason) == (9, "ScaleDownLimit")  # one pod per minute
    rec, _ = evaluate(s, 9, pods(*[0.1] * 9), state, 61.0, policy="hpa", config=cfg)
    assert rec.desired == 8


@pytest.mark.parametrize("policy", BOTH)
def test_tolerance_band(policy: Policy) -> None:
    rec, _ = evaluate(spec(), 4, pods(1.05, 1.05, 1.05, 1.05), AutoscaleState(), 0.0, policy=policy)
    assert rec.desired == 4 and not rec.scale_event


@pytest.mark.parametrize("policy", BOTH)
def test_clamped_to_min_and_max(policy: Policy) -> None:
    rec, _ = evaluate(spec(maxReplicas=5), 4, pods(9.0, 9.0, 9.0, 9.0), AutoscaleState(), 0.0, policy=policy)
    assert (rec.desired, rec.reason) == (5, "TooManyReplicas")
    old = AutoscaleState(recommendations=((-1000.0, 4),))
    rec, _ = evaluate(spec(minReplicas=3), 4, pods(0.0, 0.0, 0.0, 0.0), old, 0.0, policy=policy)
    assert (rec.desired, rec.reason) == (3, "TooFewReplicas")


@pytest.mark.parametrize("policy", BOTH)
def test_outside_bounds_moves_to_the_bound_without_metrics(policy: Policy) -> None:
    rec, _ = evaluate(spec(maxReplicas=5), 9, [], AutoscaleState(), 0.0, policy=policy)
    assert (rec.desired, rec.reason) == (5, "AboveMaxReplicas")
    rec, _ = evaluate(spec(minReplicas=2), 0, [], AutoscaleState(), 0.0, policy=policy)
    assert (rec.desired, rec.reason) == (2, "BelowMinReplicas")


@pytest.mark.parametrize("policy", BOTH)
def test_no_metrics_changes_nothing(policy: Policy) -> None:
    old = AutoscaleState(recommendations=((-1000.0, 8),))
    rec, state = evaluate(spec(), 8, pods(None, None, unready=2), old, 0.0, policy=policy)
    assert (rec.desired, rec.reason, rec.metric_value) == (8, "NoMetrics", None)
    assert state.recommendations == old.recommendations  # nothing learnt from no data


def test_meridian_never_scales_down_with_a_pod_missing() -> None:
    old = AutoscaleState(recommendations=((-1000.0, 6),))
    rec, _ = evaluate(spec(), 6, pods(0.1, 0.1, 0.1, 0.1, 0.1, None), old, 0.0, policy="meridian")
    assert (rec.desired, rec.reason) == (6, "MissingDataHolds")
    # the HPA damps instead: the missing pod counts as at target
    rec, _ = evaluate(spec(), 6, pods(0.1, 0.1, 0.1, 0.1, 0.1, None), old, 0.0, policy="hpa")
    assert rec.desired == 2


def test_status_carries_the_decision() -> None:
    rec, _ = evaluate(spec(), 2, pods(3.0, 3.0), AutoscaleState(), 1_700_000_000.0, policy="hpa")
    status = rec.status(1_700_000_000.0, last_scale_time="2023-01-01T00:00:00Z")
    assert status.wire() == {
        "metric": "requestRate",
        "currentValue": 3.0,
        "recommendedReplicas": 6,
        "lastScaleTime": "2023-11-14T22:13:20Z",
        "metricProblems": [],  # filled by the shell from the metric source
    }
    rec, _ = evaluate(spec(), 2, pods(1.0, 1.0), AutoscaleState(), 0.0, policy="hpa")
    assert rec.status(0.0, last_scale_time="2023-01-01T00:00:00Z").last_scale_time == "2023-01-01T00:00:00Z"


def test_state_round_trips_through_json() -> None:
    state = AutoscaleState(
        recommendations=((1.0, 2), (16.0, 3)),
        scale_up_events=((16.0, 1),),
        scale_down_events=(),
        demand=((16.0, 4.5),),
        pending=(16.0, 2.0),
    )
    assert AutoscaleState.from_dict(state.to_dict()) == state
    assert AutoscaleState.from_dict({}) == AutoscaleState()


def test_state_stays_bounded() -> None:
    state = AutoscaleState()
    s = spec()
    for t in range(0, 3600, 15):
        _, state = evaluate(s, 4, pods(1.0, 1.0, 1.0, 1.0), state, float(t))
    assert len(state.recommendations) <= 22
    assert len(state.demand) <= 21


values = st.one_of(st.none(), st.floats(min_value=0.0, max_value=50.0, allow_nan=False))


@settings(max_examples=200, deadline=None)
@given(
    policy=st.sampled_from(BOTH),
    lo=st.integers(0, 5),
    span=st.integers(0, 20),
    current=st.integers(0, 40),
    readings=st.lists(values, max_size=12),
    unready=st.integers(0, 4),
    target=st.floats(min_value=0.01, max_value=10.0),
    metric=st.sampled_from(["queueComputeRatio", "pendingRequests", "kvCacheUtilization", "requestRate"]),
)
def test_desired_is_always_within_bounds(
    policy: Policy,
    lo: int,
    span: int,
    current: int,
    readings: list[float | None],
    unready: int,
    target: float,
    metric: str,
) -> None:
    s = spec(minReplicas=lo, maxReplicas=max(lo, 1) + span, metric=metric, target=target)
    samples = [
        PodSample(pod=f"p{i}", value=v, load=PodLoad(1.0, v or 0.0, 0.0, v or 0.0, 8.0) if v is not None else None)
        for i, v in enumerate(readings)
    ] + [PodSample(pod=f"u{i}", ready=False) for i in range(unready)]
    rec, _ = evaluate(s, current, samples, AutoscaleState(), 100.0, policy=policy)
    assert s.min_replicas <= rec.desired <= s.max_replicas


@settings(max_examples=200, deadline=None)
@given(
    policy=st.sampled_from(BOTH),
    current=st.integers(1, 20),
    missing=st.integers(0, 5),
    unready=st.integers(0, 5),
)
def test_never_scales_down_without_metrics(policy: Policy, current: int, missing: int, unready: int) -> None:
    old = AutoscaleState(recommendations=((-10_000.0, 1),))
    rec, _ = evaluate(spec(maxReplicas=20), current, pods(*[None] * missing, unready=unready), old, 0.0, policy=policy)
    assert rec.desired >= current


@settings(max_examples=100, deadline=None)
@given(current=st.integers(2, 20), low=st.floats(0.0, 0.5), missing=st.integers(1, 3))
def test_meridian_never_scales_down_with_missing_pods(current: int, low: float, missing: int) -> None:
    old = AutoscaleState(recommendations=((-10_000.0, 1),))
    samples = pods(*[low] * current, *[None] * missing)
    rec, _ = evaluate(spec(maxReplicas=30), current, samples, old, 0.0, policy="meridian")
    assert rec.desired >= current


class FakeSource:
    """A MetricSource that reports fixed per-pod values."""

    def __init__(self, values: dict[str, float]) -> None:
        self.values = values
        self.asked: list[tuple[str, str]] = []

    async def samples(
        self, pods: Sequence[PodRef], metric: ScalingMetric, *, namespace: str, model: str | None = None
    ) -> list[PodSample]:
        self.asked.append((metric, namespace))
        return [PodSample(pod=p.name, ready=p.ready, value=self.values.get(p.name) if p.ready else None) for p in pods]


async def test_step_reads_the_source_and_evaluates() -> None:
    md = ModelDeployment.model_validate(
        {
            "metadata": {"name": "llama", "namespace": "bank-a"},
            "spec": {
                "model": {"format": "onnx", "storageUri": "s3://m/llama"},
                "autoscaling": {"enabled": True, "metric": "pendingRequests", "target": 4, "maxReplicas": 10},
            },
            "status": {"desiredReplicas": 2},
        }
    )
    source = FakeSource({"a": 12.0, "b": 12.0})
    rec, state = await step(md, [PodRef("a", ready=True), PodRef("b", ready=True)], source, AutoscaleState(), 0.0)
    assert source.asked == [("pendingRequests", "bank-a")]
    assert (rec.current, rec.desired) == (2, 6)
    assert state.scale_up_events == ((0.0, 4),)
