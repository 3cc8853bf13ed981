"""Stabilization windows and step limits, as the HPA's behavior defines them."""

from __future__ import annotations

import pytest

from meridian.autoscale.behavior import (
    DEFAULT_SCALE_DOWN_POLICIES,
    DEFAULT_SCALE_UP_POLICIES,
    ScalingPolicy,
    ScalingRules,
    limit,
    record_event,
    scale_down_limit,
    scale_up_limit,
    stabilize,
)

pytestmark = pytest.mark.unit

UP = ScalingRules(0, DEFAULT_SCALE_UP_POLICIES)
DOWN = ScalingRules(300, DEFAULT_SCALE_DOWN_POLICIES)


def test_scale_down_window_uses_the_highest_recent_recommendation() -> None:
    history = ((0.0, 10), (100.0, 6), (200.0, 8))
    value, kept = stabilize(history, 3, 10, 250.0, 0, 300)
    assert value == 10
    assert kept[-1] == (250.0, 3)
    # once the 10 has left the window, the highest remaining (8) rules
    assert stabilize(history, 3, 10, 301.0, 0, 300)[0] == 8
    # and once all have left, the new recommendation goes through
    assert stabilize(((0.0, 10),), 3, 10, 400.0, 0, 300)[0] == 3


def test_scale_up_window_uses_the_lowest_recent_recommendation() -> None:
    history = ((0.0, 4), (30.0, 9))
    # a 60 s scale-up window: the 4 is still in it, so no scale up beyond... the current 4
    assert stabilize(history, 12, 4, 45.0, 60, 300)[0] == 4
    # after it leaves, the lowest in the window (9) is where we go
    assert stabilize(history, 12, 4, 61.0, 60, 300)[0] == 9
    # with the default 0 s window a scale-up is immediate
    assert stabilize(history, 12, 4, 45.0, 0, 300)[0] == 12


def test_stabilize_forgets_recommendations_older_than_both_windows() -> None:
    _, kept = stabilize(((0.0, 1), (200.0, 2)), 3, 3, 400.0, 0, 300)
    assert kept == ((200.0, 2), (400.0, 3))


def test_default_scale_up_limit_is_max_of_four_pods_and_double() -> None:
    assert scale_up_limit(1, (), (), UP, 0.0) == 5  # +4 beats ×2
    assert scale_up_limit(3, (), (), UP, 0.0) == 7
    assert scale_up_limit(10, (), (), UP, 0.0) == 20  # ×2 beats +4


def test_step_limits_count_changes_inside_the_period() -> None:
    # 4 → 8 five seconds ago: the period started at 4, so this period allows at most 8 (4 + 4 or 4 × 2)
    ups = ((95.0, 4),)
    assert scale_up_limit(8, ups, (), UP, 100.0) == 8
    # after the period (15 s) the scale-up from 8 is free again
    assert scale_up_limit(8, ups, (), UP, 111.0) == 16


def test_default_scale_down_limit_allows_everything_at_once() -> None:
    assert scale_down_limit(10, (), (), DOWN, 0.0) == 0


def test_percent_and_pods_scale_down_policies() -> None:
    ten_percent = ScalingRules(300, (ScalingPolicy("Percent", 10, 60),))
    assert scale_down_limit(20, (), (), ten_percent, 0.0) == 18
    # having removed 2 within the minute, nothing more this period
    assert scale_down_limit(18, (), ((30.0, 2),), ten_percent, 50.0) == 18
    one_pod = ScalingRules(300, (ScalingPolicy("Pods", 1, 60),))
    assert scale_down_limit(20, (), (), one_pod, 0.0) == 19
    # select Min picks the policy that changes least: max(18, 19) = 19
    both = ScalingRules(300, (ScalingPolicy("Percent", 10, 60), ScalingPolicy("Pods", 1, 60)), "Min")
    assert scale_down_limit(20, (), (), both, 0.0) == 19


def test_percent_scale_up_rounds_up_so_small_counts_grow() -> None:
    ten_percent = ScalingRules(0, (ScalingPolicy("Percent", 10, 60),))
    assert scale_up_limit(1, (), (), ten_percent, 0.0) == 2


def test_disabled_direction_never_moves() -> None:
    off = ScalingRules(0, DEFAULT_SCALE_UP_POLICIES, "Disabled")
    assert limit(10, 3, 1, 20, (), (), off, DOWN, 0.0) == (3, "ScaleUpLimit")


def test_limit_applies_step_limits_and_bounds() -> None:
    assert limit(30, 5, 1, 64, (), (), UP, DOWN, 0.0) == (10, "ScaleUpLimit")
    assert limit(30, 5, 1, 8, (), (), UP, DOWN, 0.0) == (8, "TooManyReplicas")
    assert limit(7, 5, 1, 64, (), (), UP, DOWN, 0.0) == (7, "DesiredWithinRange")
    assert limit(0, 5, 2, 64, (), (), UP, DOWN, 0.0) == (2, "TooFewReplicas")
    slow = ScalingRules(300, (ScalingPolicy("Pods", 1, 15),))
    assert limit(0, 5, 1, 64, (), (), UP, slow, 0.0) == (4, "ScaleDownLimit")
    assert limit(5, 5, 1, 64, (), (), UP, DOWN, 0.0) == (5, "DesiredWithinRange")


def test_record_event_forgets_events_past_the_longest_period() -> None:
    events = record_event(((0.0, 2), (90.0, 1)), 3, 100.0, UP)
    assert events == ((90.0, 1), (100.0, 3))
