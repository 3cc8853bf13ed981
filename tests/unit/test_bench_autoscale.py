"""The autoscaling benchmark's own rules: serving limits, traces, frontiers and the reference plans."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import autoscale
import frontier
import serving
import traces

pytestmark = pytest.mark.unit


def replica() -> serving.Replica:
    return serving.Replica("r", created=0.0, ready_at=0.0)


def service(prompt: int, output: int, batch: int) -> float:
    slowdown = 1.0 + serving.TPOT_SLOWDOWN * batch / serving.SLOTS
    return prompt / serving.PREFILL_TOKENS_PER_S + output * serving.TPOT_S * slowdown


def test_a_request_waits_for_kv_cache_even_with_free_slots() -> None:
    r = replica()
    big = serving.KV_TOKENS - 1_000
    assert r.admit(0.0, big - 100, 100) == pytest.approx((big - 100) / serving.PREFILL_TOKENS_PER_S)
    ttft = r.admit(1.0, 2_000, 100)  # 15 slots free, but its 2,100 tokens do not fit beside the first
    first_ends = service(big - 100, 100, 1)
    assert ttft == pytest.approx(first_ends - 1.0 + 2_000 / serving.PREFILL_TOKENS_PER_S)


def test_a_full_queue_rejects_and_a_long_wait_times_out_without_taking_capacity() -> None:
    r = replica()
    for _ in range(serving.SLOTS):  # every slot busy for a long time
        assert r.admit(0.0, 10, 1_500) >= 0
    long_run = service(10, 1_500, 1)  # the first to finish
    assert long_run > serving.CLIENT_TIMEOUT_S
    assert r.admit(0.5, 10, 10) == serving.TIMED_OUT  # it would wait ~long_run s
    assert r.scrape(0.5).pending == 0  # it took no place in the queue
    r2 = replica()
    for i in range(serving.SLOTS):
        r2.admit(0.0, 10, 100 + i)
    for _ in range(serving.MAX_QUEUE):
        assert r2.admit(0.1, 10, 10) >= 0
    assert r2.admit(0.2, 10, 10) == serving.REJECTED
    assert r2.scrape(0.2).pending == serving.MAX_QUEUE


def test_triton_counters_follow_the_requests() -> None:
    r = replica()
    r.admit(0.0, 800, 40)
    during = r.scrape(0.5)
    assert during.active == 1 and during.kv_used == pytest.approx(-(-840 // serving.KV_BLOCK_TOKENS))
    after = r.scrape(100.0)
    assert after.active == 0 and after.kv_used == 0
    assert after.counters[serving.KEYS[serving.SUCCESS]] == 1


def test_traces_are_seeded_and_the_production_one_has_the_published_medians() -> None:
    a, b = traces.generate(3, "production", hours=0.5), traces.generate(3, "production", hours=0.5)
    assert a.arrivals == b.arrivals and a.prompts == b.prompts
    assert statistics.median(a.prompts) == pytest.approx(1_020, rel=0.05)  # Splitwise, Azure conversation
    assert statistics.median(a.outputs) == pytest.approx(129, rel=0.05)
    assert traces.generate(4, "production", hours=0.5).arrivals != a.arrivals


def test_frontier_keeps_only_settings_nothing_beats() -> None:
    pts = [frontier.Point("x", t, rh, v) for t, rh, v in [(1, 10, 50), (2, 12, 20), (3, 13, 30), (4, 20, 0)]]
    assert [p.target for p in frontier.frontier(pts)] == [1, 2, 4]  # 3 costs more than 2 and misses more
    h = frontier.headline(frontier.Point("m", 0, 9, 20), pts)
    assert h.baseline is not None and h.baseline.target == 2 and h.ratio == pytest.approx(9 / 12)
    assert frontier.headline(frontier.Point("m", 0, 9, -1), pts).ratio is None


def test_the_reference_plans_hold_the_scale_down_window_and_only_the_clairvoyant_looks_ahead() -> None:
    trace = traces.Trace(
        "step",
        traces.TraceParams(hours=1000 / 3600),
        [500.0 + i * 0.01 for i in range(40)],
        [10] * 40,
        [80] * 40,
        [],
        [],
    )
    now = autoscale.oracle_plan(trace, 4.0, ahead=0)
    ahead = autoscale.oracle_plan(trace, 4.0, ahead=195)
    assert now[499] == 1 and now[501] == 10 and now[790] == 10 and now[900] == 1  # held 300 s, then freed
    assert ahead[310] == 10 and ahead[300] == 1  # started one cold start + one sync early
