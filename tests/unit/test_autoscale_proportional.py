"""The HPA rule: proportional, tolerance band, and its treatment of missing and unready pods."""

from __future__ import annotations

import pytest

from meridian.autoscale.proportional import ceil, proportional
from meridian.autoscale.samples import PodSample

pytestmark = pytest.mark.unit


def pods(*values: float | None, unready: int = 0) -> list[PodSample]:
    ready = [PodSample(pod=f"p{i}", value=v) for i, v in enumerate(values)]
    return ready + [PodSample(pod=f"u{i}", ready=False) for i in range(unready)]


def test_proportional_rule_rounds_up() -> None:
    # 4 pods averaging 1.5 against target 1.0: ceil(4 × 1.5) = 6
    assert proportional(pods(1.0, 2.0, 1.5, 1.5), 1.0, 4).replicas == 6
    # averaging 0.3 → ceil(4 × 0.3) = 2
    assert proportional(pods(0.3, 0.3, 0.3, 0.3), 1.0, 4).replicas == 2


def test_float_noise_does_not_add_a_replica() -> None:
    assert 0.1 * 3 > 0.3  # 0.30000000000000004 in floats
    assert ceil(0.1 * 3 * 10) == 3
    assert ceil(11.01) == 12


def test_within_tolerance_keeps_current() -> None:
    p = proportional(pods(1.09, 1.09), 1.0, 2)
    assert (p.replicas, p.reason) == (2, "WithinTolerance")
    assert proportional(pods(0.91, 0.91), 1.0, 2).replicas == 2
    assert proportional(pods(1.11, 1.11), 1.0, 2).replicas == 3
    assert proportional(pods(1.2, 1.2), 1.0, 2, tolerance=0.25).replicas == 2


def test_value_is_the_average_of_ready_pods_with_metrics() -> None:
    p = proportional(pods(1.0, 3.0, None, unready=2), 1.0, 5)
    assert p.value == pytest.approx(2.0)


def test_no_metrics_gives_no_recommendation() -> None:
    p = proportional(pods(None, None, unready=1), 1.0, 3)
    assert (p.replicas, p.reason) == (None, "NoMetrics")


def test_missing_pods_count_as_zero_on_scale_up() -> None:
    # ratio 2 over 2 measured pods; 2 missing at 0 → new ratio 1.0 → within tolerance: hold
    assert proportional(pods(2.0, 2.0, None, None), 1.0, 4).replicas == 4
    # ratio 4 → with 2 missing at 0: average 2.0 over 4 pods → 8
    assert proportional(pods(4.0, 4.0, None, None), 1.0, 4).replicas == 8


def test_missing_pods_count_as_target_on_scale_down() -> None:
    # measured pods at 0 want to go to 0; 2 missing at target: average 0.5 over 4 → 2
    p = proportional(pods(0.0, 0.0, None, None), 1.0, 4)
    assert p.replicas == 2
    assert p.reason == "ProportionalWithMissingData"
    # without the missing pods the same readings would ask for 0
    assert proportional(pods(0.0, 0.0), 1.0, 2).replicas == 0


def test_missing_pods_that_flip_the_direction_hold() -> None:
    # ratio 0.85 (scale-down) over 1 pod; 3 missing at target → 0.96 within tolerance: hold
    assert proportional(pods(0.85, None, None, None), 1.0, 4).replicas == 4


def test_unready_pods_count_as_zero_only_on_scale_up() -> None:
    # 2 ready at 3.0 and 4 starting: 6 × (6/6)/1 = 6 → hold: the scale-up is already on its way
    p = proportional(pods(3.0, 3.0, unready=4), 1.0, 6)
    assert p.replicas == 6
    # 2 ready at 3.0, 1 starting: average 2.0 over 3 → 6
    assert proportional(pods(3.0, 3.0, unready=1), 1.0, 3).replicas == 6
    # on a scale-down unready pods are ignored: 2 ready at 0.2 → ceil(0.4) = 1
    assert proportional(pods(0.2, 0.2, unready=2), 1.0, 4).replicas == 1


def test_target_other_than_one() -> None:
    # pendingRequests target 5: pods at 10 → double
    assert proportional(pods(10.0, 10.0, 10.0), 5.0, 3).replicas == 6
