"""Scale to zero (autoscale/idle.py): when a model with minReplicas 0 goes idle, what wakes it, and
what status and the wake query's parser say; pure inputs only."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meridian.api.modeldeployment import Autoscaling, AutoscalingStatus, ModelDeployment
from meridian.autoscale import AutoscaleState, PodLoad, PodSample
from meridian.autoscale.idle import (
    DEFAULT_IDLE_SECONDS,
    IdleMemory,
    Signals,
    activity,
    decide,
    evaluate_idle,
    idle_event,
    idle_status,
    idle_window,
    served,
    wake_problems,
    wake_signals,
)
from meridian.autoscale.sources.wake import query_value

pytestmark = pytest.mark.unit
QUERY = 'sum(rate(gateway_requests_total{model="llm"}[1m]))'


def spec(**kw: Any) -> Autoscaling:
    base: dict[str, Any] = {"enabled": True, "minReplicas": 0, "maxReplicas": 4, "metric": "requestRate"}
    return Autoscaling.model_validate(base | kw)


def woken(**kw: Any) -> Autoscaling:
    return spec(**({"idleSeconds": 60, "wakeOn": {"query": QUERY}} | kw))


def loaded(rate: float) -> PodSample:
    return PodSample(pod="p", value=None, load=PodLoad(throughput=rate, busy=0.0, waiting=0.0, pending=0.0))


def test_window_only_with_min_zero_and_defaults_to_five_minutes() -> None:
    assert idle_window(spec(minReplicas=1)) is None
    assert idle_window(spec(enabled=False)) is None
    assert idle_window(spec()) == DEFAULT_IDLE_SECONDS == 300
    assert idle_window(spec(idleSeconds=30)) == 30


def test_served_needs_every_ready_pod_to_tell() -> None:
    assert served([loaded(0.0), loaded(2.0)], "queueComputeRatio") == 2.0
    assert served([loaded(0.0), PodSample(pod="q", value=0.5)], "queueComputeRatio") is None
    assert served([PodSample(pod="q", value=0.0), PodSample(pod="r", ready=False)], "requestRate") == 0.0
    assert served([], "requestRate") is None


def test_with_a_query_the_query_decides_idleness() -> None:
    s = woken()
    assert activity(s, Signals(wake_value=0.0)) == "quiet"
    assert activity(s, Signals(wake_value=None, served=0.0)) == "unknown"  # Prometheus silent: no guess
    assert activity(s, Signals(wake_value=0.0, served=3.0)) == "active"  # a pod serving is demand too
    assert activity(woken(wakeOn={"query": QUERY, "threshold": 2}), Signals(wake_value=2.0)) == "quiet"
    assert activity(spec(), Signals(served=0.0)) == "quiet"
    assert activity(spec(), Signals(served=None)) == "unknown"


def test_goes_idle_only_after_the_whole_window_of_quiet() -> None:
    s, memory = woken(), IdleMemory(last_active=1000.0)
    d = decide(s, 2, Signals(wake_value=0.0), memory, 1059.0)
    assert d.desired is None and d.memory == memory
    d = decide(s, 2, Signals(wake_value=0.0, spec_replicas=1), memory, 1060.0)
    assert (d.desired, d.reason) == (0, "IdleScaledToZero")
    assert d.memory == IdleMemory(last_active=1000.0, idle_since=1060.0, spec_replicas=1)


def test_first_sight_starts_the_window_and_unknown_never_idles() -> None:
    d = decide(woken(), 1, Signals(wake_value=0.0), IdleMemory(), 5000.0)
    assert d.desired is None and d.memory.last_active == 5000.0  # a restart waits a full window
    d = decide(woken(), 1, Signals(wake_value=None), IdleMemory(last_active=0.0), 5000.0)
    assert d.desired is None


def test_idle_model_wakes_on_the_query_to_one_replica() -> None:
    idle = IdleMemory(last_active=0.0, idle_since=60.0, spec_replicas=1)
    d = decide(woken(), 0, Signals(wake_value=0.0, spec_replicas=1), idle, 500.0)
    assert (d.desired, d.reason, d.memory) == (0, "Idle", idle)
    d = decide(woken(), 0, Signals(wake_value=0.2, spec_replicas=1), idle, 500.0)
    assert (d.desired, d.reason, d.memory) == (1, "WakeQueryAboveThreshold", IdleMemory(last_active=500.0))


def test_idle_model_wakes_on_kubectl_scale_within_max() -> None:
    idle = IdleMemory(last_active=0.0, idle_since=60.0, spec_replicas=1)
    assert decide(woken(), 0, Signals(wake_value=0.0, spec_replicas=3), idle, 500.0).desired == 3
    assert decide(woken(), 0, Signals(wake_value=0.0, spec_replicas=9), idle, 500.0).desired == 4
    d = decide(woken(), 0, Signals(wake_value=0.0, spec_replicas=0), idle, 500.0)
    assert d.desired == 0 and d.memory.spec_replicas == 0  # scaled to 0: the next scale up wakes it
    assert decide(woken(), 0, Signals(wake_value=0.0, spec_replicas=1), d.memory, 501.0).desired == 1


def test_a_model_found_at_zero_is_idle_from_then_on() -> None:
    d = decide(woken(), 0, Signals(wake_value=None, spec_replicas=0), IdleMemory(), 42.0)
    assert (d.desired, d.memory) == (0, IdleMemory(None, 42.0, 0))


def test_running_model_is_left_to_the_recommender_with_a_floor_of_one() -> None:
    samples = [PodSample(pod="p", value=0.0)]  # no requests: the policy alone would go below one
    rec, _, memory = evaluate_idle(
        spec(idleSeconds=600, scaleDownStabilizationSeconds=0),
        2,
        samples,
        AutoscaleState(),
        100.0,
        IdleMemory(last_active=0.0),
        policy="hpa",
    )
    assert (rec.raw, rec.desired) == (0, 1) and memory == IdleMemory(last_active=0.0)
    rec, state, memory = evaluate_idle(
        spec(idleSeconds=60), 1, samples, AutoscaleState(), 100.0, IdleMemory(last_active=0.0), policy="hpa"
    )
    assert (rec.desired, rec.reason, state) == (0, "IdleScaledToZero", AutoscaleState())
    assert memory.idle_since == 100.0


@given(
    current=st.integers(0, 6),
    wake=st.none() | st.floats(0, 10),
    served_rate=st.none() | st.floats(0, 10),
    spec_replicas=st.integers(0, 8),
    remembered=st.none() | st.integers(0, 8),
    last=st.none() | st.floats(0, 1000),
    now=st.floats(1000, 5000),
)
def test_properties(
    current: int,
    wake: float | None,
    served_rate: float | None,
    spec_replicas: int,
    remembered: int | None,
    last: float | None,
    now: float,
) -> None:
    s = woken()
    memory = IdleMemory(last, 900.0 if current == 0 else None, remembered if current == 0 else None)
    d = decide(s, current, Signals(wake, served_rate, spec_replicas), memory, now)
    if current > 0:
        assert d.desired in (None, 0)
        if d.desired == 0:  # only on evidence of quiet, after a full window of it
            assert wake is not None and wake <= 0 and not served_rate
            assert last is not None and now - last >= 60
            assert d.memory.idle_since == now
    else:
        assert d.desired is not None and 0 <= d.desired <= s.max_replicas
        if wake is not None and wake > 0:
            assert d.desired == 1  # the query wakes to one replica
        if d.desired > 0:
            assert d.memory.idle_since is None and d.memory.last_active == now
        else:
            assert d.memory.idle_since == 900.0  # idle since the model went to zero, not since last look


def test_status_says_idle_and_what_wakes_it() -> None:
    memory = IdleMemory(last_active=1_700_000_000.0, idle_since=1_700_000_060.0, spec_replicas=1)
    wakes = wake_signals(woken(), "llm", 1, prometheus=True)
    assert wakes == [
        f"{QUERY} > 0",
        "kubectl scale modeldeployment/llm --replicas=N (N ≥ 1, N ≠ spec.replicas 1)",
    ]
    status = AutoscalingStatus(metric="requestRate", recommended_replicas=0).model_copy(
        update=idle_status(memory, 0.0, wakes)
    )
    assert status.wire() == {
        "metric": "requestRate",
        "recommendedReplicas": 0,
        "metricProblems": [],
        "idle": True,
        "idleSince": "2023-11-14T22:14:20Z",
        "lastActiveTime": "2023-11-14T22:13:20Z",
        "wakeValue": 0.0,
        "wakeOn": wakes,
        "idleSpecReplicas": 1,
    }
    assert IdleMemory.from_status(status) == memory  # what a restarted operator reads back
    running = idle_status(IdleMemory(last_active=1_700_000_000.0), 3.0, wakes)
    assert (running["idle"], running["idle_since"], running["idle_spec_replicas"]) == (False, None, None)
    assert "not evaluated" in wake_signals(woken(), "llm", 1, prometheus=False)[0]


def test_events_name_the_cause() -> None:
    rec, _, _ = evaluate_idle(woken(), 0, [], AutoscaleState(), 10.0, IdleMemory(0.0, 5.0, 1), wake_value=0.5)
    assert idle_event(rec, woken(), 0.5) == ("WokenUp", "0 → 1 replicas: wakeOn query = 0.5 > 0")


def test_a_wake_query_without_prometheus_is_a_problem() -> None:
    assert wake_problems(woken(), prometheus=True) == []
    assert wake_problems(spec(), prometheus=False) == []
    [message] = wake_problems(woken(), prometheus=False)
    assert "spec.autoscaling.wakeOn.query" in message and "MERIDIAN_PROMETHEUS_URL" in message


@pytest.mark.parametrize(
    ("body", "value"),
    [
        ({"status": "success", "data": {"resultType": "vector", "result": []}}, 0.0),
        ({"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, "0.5"]}] * 2}}, 1.0),
        ({"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, "NaN"]}]}}, 0.0),
        ({"status": "success", "data": {"resultType": "scalar", "result": [1, "2"]}}, 2.0),
        ({"status": "success", "data": {"resultType": "matrix", "result": []}}, None),
        ({"status": "error", "error": "parse error"}, None),
    ],
)
def test_query_value(body: dict[str, Any], value: float | None) -> None:
    assert query_value(body) == value


def test_the_api_refuses_nothing_the_crd_allows() -> None:
    md = ModelDeployment.model_validate(
        {
            "metadata": {"name": "llm", "namespace": "a"},
            "spec": {
                "model": {"format": "onnx", "storageUri": "s3://m/m"},
                "autoscaling": {"enabled": True, "minReplicas": 0, "idleSeconds": 30, "wakeOn": {"query": QUERY}},
            },
        }
    )
    assert md.spec.autoscaling.wake_on is not None and md.spec.autoscaling.wake_on.threshold == 0.0
