"""Metric sources: Triton text parsing, counter rates across resets, derivation, PromQL, HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from meridian.autoscale.sources import PodRef, PrometheusSource, ScrapeSource, Selector, parse, promql, source_for
from meridian.autoscale.sources.derive import metric_value, pod_load
from meridian.autoscale.sources.prometheus import PrometheusError, load_queries, parse_vector
from meridian.autoscale.sources.rates import CounterRateTracker, Increase, increase
from meridian.autoscale.sources.scrape import metrics_url
from meridian.autoscale.sources.triton import COMPUTE_US, QUEUE_US, SUCCESS

pytestmark = pytest.mark.unit


def triton_text(
    success: float = 120, queue_us: float = 2_000_000, compute_us: float = 40_000_000, pending: float = 3
) -> str:
    """What Triton 2.5x with the TensorRT-LLM backend prints on :8002/metrics (trimmed)."""
    return f"""\
# HELP nv_inference_request_success Number of successful inference requests, all batch sizes
# TYPE nv_inference_request_success counter
nv_inference_request_success{{model="ensemble",version="1"}} {success}
nv_inference_request_success{{model="tensorrt_llm",version="1"}} {success}
# HELP nv_inference_request_failure Number of failed inference requests, all batch sizes
# TYPE nv_inference_request_failure counter
nv_inference_request_failure{{model="ensemble",version="1"}} 2
# HELP nv_inference_count Number of inferences performed (does not include cached requests)
# TYPE nv_inference_count counter
nv_inference_count{{model="ensemble",version="1"}} {success}
# HELP nv_inference_pending_request_count Instantaneous number of pending requests awaiting execution per-model.
# TYPE nv_inference_pending_request_count gauge
nv_inference_pending_request_count{{model="ensemble",version="1"}} 0
nv_inference_pending_request_count{{model="tensorrt_llm",version="1"}} {pending}
# HELP nv_inference_queue_duration_us Cumulative inference queuing duration in microseconds (includes cached requests)
# TYPE nv_inference_queue_duration_us counter
nv_inference_queue_duration_us{{model="ensemble",version="1"}} 0
nv_inference_queue_duration_us{{model="tensorrt_llm",version="1"}} {queue_us}
# HELP nv_inference_compute_infer_duration_us Cumulative compute inference duration in microseconds
# TYPE nv_inference_compute_infer_duration_us counter
nv_inference_compute_infer_duration_us{{model="ensemble",version="1"}} 0
nv_inference_compute_infer_duration_us{{model="tensorrt_llm",version="1"}} {compute_us}
# HELP nv_trt_llm_request_metrics TRT LLM request metrics
# TYPE nv_trt_llm_request_metrics gauge
nv_trt_llm_request_metrics{{model="tensorrt_llm",request_type="context",version="1"}} 1
nv_trt_llm_request_metrics{{model="tensorrt_llm",request_type="scheduled",version="1"}} 5
nv_trt_llm_request_metrics{{model="tensorrt_llm",request_type="max",version="1"}} 64
nv_trt_llm_request_metrics{{model="tensorrt_llm",request_type="active",version="1"}} 5
# HELP nv_trt_llm_kv_cache_block_metrics TRT LLM KV cache block metrics
# TYPE nv_trt_llm_kv_cache_block_metrics gauge
nv_trt_llm_kv_cache_block_metrics{{kv_cache_block_type="tokens_per",model="tensorrt_llm",version="1"}} 64
nv_trt_llm_kv_cache_block_metrics{{kv_cache_block_type="used",model="tensorrt_llm",version="1"}} 1560
nv_trt_llm_kv_cache_block_metrics{{kv_cache_block_type="free",model="tensorrt_llm",version="1"}} 4680
nv_trt_llm_kv_cache_block_metrics{{kv_cache_block_type="max",model="tensorrt_llm",version="1"}} 6240
# HELP nv_gpu_utilization GPU utilization rate [0.0 - 1.0)
# TYPE nv_gpu_utilization gauge
nv_gpu_utilization{{gpu_uuid="GPU-3b7e2f7c-1a7e-4d8a-9d6b-1f0a0b0c0d0e"}} 0.9
nv_gpu_utilization{{gpu_uuid="GPU-9a1c2b3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"}} 0.7
# HELP nv_gpu_memory_used_bytes GPU used memory, in bytes
# TYPE nv_gpu_memory_used_bytes gauge
nv_gpu_memory_used_bytes{{gpu_uuid="GPU-3b7e2f7c-1a7e-4d8a-9d6b-1f0a0b0c0d0e"}} 7.6e+10
"""


def test_parse_real_triton_text() -> None:
    s = parse(triton_text())
    key = (SUCCESS, (("model", "tensorrt_llm"), ("version", "1")))
    assert s.counters[key] == 120
    assert len([k for k in s.counters if k[0] == SUCCESS]) == 2
    assert s.pending == 3
    assert (s.kv_used, s.kv_max) == (1560, 6240)
    assert s.gpu_utilization == pytest.approx(0.8)
    assert s.capacity == 64


def test_parse_filters_inference_metrics_by_model_only() -> None:
    s = parse(triton_text(), model="ensemble")
    assert all(dict(labels)["model"] == "ensemble" for _, labels in s.counters)
    assert s.pending == 0
    # backend and GPU metrics belong to the pod, whatever model name the clients call
    assert (s.kv_used, s.capacity) == (1560, 64)
    assert s.gpu_utilization == pytest.approx(0.8)


def test_parse_plain_model_without_trtllm_metrics() -> None:
    text = """\
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="m",version="1"} 10
# TYPE nv_inference_pending_request_count gauge
nv_inference_pending_request_count{model="m",version="1"} 2
"""
    s = parse(text)
    assert s.counters == {(SUCCESS, (("model", "m"), ("version", "1"))): 10}
    assert (s.pending, s.kv_used, s.kv_max, s.gpu_utilization, s.capacity) == (2, None, None, None, None)


def test_parse_rejects_garbage() -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the parser's own error type
        parse("this is { not prometheus")


def test_counter_increase_and_reset() -> None:
    assert increase(10, 25) == 15
    assert increase(25, 4) == 4  # reset: counted from zero since the restart
    assert increase(7, 7) == 0


def test_rate_tracker_across_scrapes_restarts_and_new_series() -> None:
    tracker = CounterRateTracker()
    a = (SUCCESS, (("model", "m"), ("version", "1")))
    b = (SUCCESS, (("model", "m"), ("version", "2")))
    assert tracker.observe("pod", {a: 100}, 0.0) is None  # one scrape is not a window
    inc = tracker.observe("pod", {a: 130}, 15.0)
    assert inc is not None and inc.rate(SUCCESS) == pytest.approx(2.0)
    inc = tracker.observe("pod", {a: 6}, 30.0)  # Triton restarted
    assert inc is not None and inc.of(SUCCESS) == 6
    inc = tracker.observe("pod", {a: 36, b: 500}, 45.0)  # a new series has no increase yet
    assert inc is not None and inc.of(SUCCESS) == 30
    inc = tracker.observe("pod", {a: 36, b: 530}, 60.0)
    assert inc is not None and inc.of(SUCCESS) == 30
    assert tracker.observe("pod", {a: 40}, 60.0) is None  # no time passed: no rate
    tracker.retain(["other"])
    assert "pod" not in tracker


def inc(seconds: float, queue_us: float, compute_us: float, success: float) -> Increase:
    return Increase(seconds, {QUEUE_US: queue_us, COMPUTE_US: compute_us, SUCCESS: success})


def test_every_metric_derives_as_documented() -> None:
    s = parse(triton_text())
    i = inc(15.0, 3_000_000, 60_000_000, 30)
    assert metric_value("queueComputeRatio", s, i) == pytest.approx(0.05)
    assert metric_value("pendingRequests", s, i) == 3
    assert metric_value("kvCacheUtilization", s, i) == pytest.approx(0.25)
    assert metric_value("gpuUtilization", s, i) == pytest.approx(0.8)
    assert metric_value("requestRate", s, i) == pytest.approx(2.0)
    load = pod_load(s, i)
    assert load is not None
    assert (load.throughput, load.busy, load.waiting, load.pending, load.capacity) == pytest.approx(
        (2.0, 4.0, 0.2, 3.0, 64.0)
    )


def test_rate_metrics_are_missing_until_a_second_scrape() -> None:
    s = parse(triton_text())
    assert metric_value("queueComputeRatio", s, None) is None
    assert metric_value("requestRate", s, None) is None
    assert pod_load(s, None) is None
    assert metric_value("pendingRequests", s, None) == 3  # gauges need no window


def test_queue_compute_ratio_is_clamped_like_nvidias_rule() -> None:
    s = parse(triton_text())
    assert metric_value("queueComputeRatio", s, inc(15.0, 0, 0, 0)) == 0.0  # idle
    # queued but nothing computed: Δqueue ÷ max(Δcompute, 1 µs/s × Δt)
    assert metric_value("queueComputeRatio", s, inc(15.0, 1_500_000, 0, 0)) == pytest.approx(100_000)


def test_kv_utilization_missing_without_trtllm() -> None:
    s = parse('# TYPE nv_gpu_utilization gauge\nnv_gpu_utilization{gpu_uuid="GPU-1"} 0.5\n')
    assert metric_value("kvCacheUtilization", s, None) is None


SEL = Selector(namespace="bank-a", pods=("llama-gra-7d9f-abc", "llama-rbx-5c4b-def"), model=None)


def test_promql_for_every_metric() -> None:
    m = '{namespace="bank-a",pod=~"llama-gra-7d9f-abc|llama-rbx-5c4b-def"}'
    assert promql("queueComputeRatio", SEL) == (
        f"sum by (pod) (rate(nv_inference_queue_duration_us{m}[1m])) / "
        f"clamp_min(sum by (pod) (rate(nv_inference_compute_infer_duration_us{m}[1m])), 1)"
    )
    assert promql("pendingRequests", SEL) == f"sum by (pod) (nv_inference_pending_request_count{m})"
    kv_used = m[:-1] + ',kv_cache_block_type="used"}'
    kv_max = m[:-1] + ',kv_cache_block_type="max"}'
    assert promql("kvCacheUtilization", SEL) == (
        f"sum by (pod) (nv_trt_llm_kv_cache_block_metrics{kv_used}) / "
        f"clamp_min(sum by (pod) (nv_trt_llm_kv_cache_block_metrics{kv_max}), 1)"
    )
    assert promql("gpuUtilization", SEL) == f"avg by (pod) (nv_gpu_utilization{m})"
    assert promql("requestRate", SEL, window="2m") == f"sum by (pod) (rate(nv_inference_request_success{m}[2m]))"
    active = m[:-1] + ',request_type="active"}'
    assert promql("inFlightRequests", SEL) == (
        f"(sum by (pod) (nv_trt_llm_request_metrics{active}) or "
        f"sum by (pod) (rate(nv_inference_compute_infer_duration_us{m}[1m])) / 1e6) + "
        f"sum by (pod) (nv_inference_pending_request_count{m})"
    )


def test_in_flight_requests_are_running_plus_queued() -> None:
    trtllm = parse(triton_text(pending=3))
    assert trtllm.active == 5
    assert metric_value("inFlightRequests", trtllm, None) == 8  # TensorRT-LLM's active + Triton's queue
    plain = parse(triton_text(pending=2).replace('request_type="active"', 'request_type="other"'))
    assert plain.active is None
    assert metric_value("inFlightRequests", plain, None) is None  # no window yet for the executing mean
    # 30 s of compute in 15 s: two requests executing on average, two queued
    assert metric_value("inFlightRequests", plain, inc(15.0, 0, 30_000_000, 10)) == pytest.approx(4.0)


def test_promql_model_filter_labels_and_escaping() -> None:
    sel = Selector(
        namespace='we"ird', pods=("a.b",), model="llama", pod_label="kubernetes_pod_name", namespace_label="ns"
    )
    assert promql("pendingRequests", sel) == (
        "sum by (kubernetes_pod_name) (nv_inference_pending_request_count"
        '{ns="we\\"ird",kubernetes_pod_name=~"a\\\\.b",model="llama"})'
    )
    assert "model=" not in promql("gpuUtilization", sel)  # GPU series carry no model label
    assert set(load_queries(sel)) == {
        "throughput",
        "busy",
        "waiting",
        "pending",
        "capacity",
        "kv_used",
        "kv_max",
        "active",
    }
    assert 'request_type="max"' in load_queries(sel)["capacity"]
    # TensorRT-LLM's own series sit under its inner model (tensorrt_llm), whatever the model is called:
    # filtered by name they would never match, as the direct scrape never filters them
    backend = [load_queries(sel)[k] for k in ("capacity", "kv_used", "kv_max", "active")]
    backend += [promql("kvCacheUtilization", sel)]
    assert all("nv_trt_llm" in q and "model=" not in q for q in backend), backend
    running, executing = promql("inFlightRequests", sel).split(" or ")
    assert "model=" not in running
    assert 'model="llama"' in executing  # Triton's own counters and queue are the model's


def test_parse_vector() -> None:
    body = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"pod": "a"}, "value": [1712000000.1, "0.25"]},
                {"metric": {"pod": "b"}, "value": [1712000000.1, "NaN"]},
                {"metric": {"pod": "c"}, "value": [1712000000.1, "+Inf"]},
                {"metric": {}, "value": [1712000000.1, "1"]},
            ],
        },
    }
    assert parse_vector(body) == {"a": 0.25}
    with pytest.raises(PrometheusError):
        parse_vector({"status": "error", "error": "parse error"})
    with pytest.raises(PrometheusError):
        parse_vector({"status": "success", "data": {"resultType": "matrix", "result": []}})


def test_metrics_url() -> None:
    assert metrics_url("10.0.0.7") == "http://10.0.0.7:8002/metrics"
    assert metrics_url("fd00::7") == "http://[fd00::7]:8002/metrics"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


async def test_scrape_source_against_a_local_triton_stand_in(session: aiohttp.ClientSession) -> None:
    counters = {"success": 100.0, "queue": 0.0, "compute": 0.0}

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            text=triton_text(success=counters["success"], queue_us=counters["queue"], compute_us=counters["compute"])
        )

    async def hang(_: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    slow = web.Application()
    slow.router.add_get("/metrics", hang)
    runner, port = await serve(app)
    slow_runner, slow_port = await serve(slow)
    clock = iter([0.0, 15.0])
    try:
        src = ScrapeSource(session, port=port, timeout=0.5, clock=lambda: next(clock))
        pods = [
            PodRef("ok", "127.0.0.1", ready=True, uid="u1"),
            PodRef("starting", "127.0.0.1", ready=False, uid="u2"),
            PodRef("no-ip", None, ready=True, uid="u3"),
        ]
        first = await src.samples(pods, "requestRate")
        assert [(s.pod, s.ready, s.value) for s in first] == [
            ("ok", True, None),
            ("starting", False, None),
            ("no-ip", True, None),
        ]
        counters.update(success=130.0, queue=1_500_000.0, compute=30_000_000.0)
        second = await src.samples(pods, "requestRate")
        assert second[0].value == pytest.approx(2 * 30 / 15)  # two series (ensemble and tensorrt_llm) grew by 30
        assert second[0].load is not None and second[0].load.capacity == 64
        pending = await ScrapeSource(session, port=port).samples(pods[:1], "pendingRequests")
        assert pending[0].value == 3

        hung = ScrapeSource(session, port=slow_port, timeout=0.2)
        [sample] = await hung.samples([PodRef("hung", "127.0.0.1", ready=True)], "pendingRequests")
        assert sample.ready and sample.value is None  # unreachable in time = missing
        assert hung.problems() == ["pod hung: /metrics did not answer within 0.2s"]
    finally:
        await runner.cleanup()
        await slow_runner.cleanup()


async def test_an_endless_metrics_body_is_never_read_whole(session: aiohttp.ClientSession) -> None:
    sent = {"bytes": 0}

    async def endless(request: web.Request) -> web.StreamResponse:  # no Content-Length: chunked, forever
        resp = web.StreamResponse()
        await resp.prepare(request)
        chunk = b"# HELP padding\n" * 4096
        while sent["bytes"] < 64 * 1024 * 1024:
            await resp.write(chunk)
            sent["bytes"] += len(chunk)
        return resp

    async def huge(_: web.Request) -> web.Response:  # announces its size up front
        return web.Response(body=b"x" * (2 * 1024 * 1024))

    app = web.Application()
    app.router.add_get("/metrics", endless)
    big = web.Application()
    big.router.add_get("/metrics", huge)
    runner, port = await serve(app)
    big_runner, big_port = await serve(big)
    try:
        src = ScrapeSource(session, port=port, timeout=5, max_bytes=1024 * 1024)
        [sample] = await src.samples([PodRef("tenant", "127.0.0.1", ready=True)], "pendingRequests")
        assert sample.ready and sample.value is None
        assert src.problems() == ["pod tenant: /metrics is over 1048576 bytes; not read"]
        assert sent["bytes"] < 64 * 1024 * 1024  # the operator stopped reading long before the end
        announced = ScrapeSource(session, port=big_port, max_bytes=1024 * 1024)
        await announced.samples([PodRef("big", "127.0.0.1", ready=True)], "pendingRequests")
        assert announced.problems() == ["pod big: /metrics is 2097152 bytes, over 1048576"]
    finally:
        await runner.cleanup()
        await big_runner.cleanup()


async def test_prometheus_source_against_a_local_api_stand_in(session: aiohttp.ClientSession) -> None:
    # A real Prometheus (Debian's package) is not installed here; this checks our HTTP and JSON side.
    seen: list[str] = []

    def vector(pairs: dict[str, str]) -> dict[str, Any]:
        result = [{"metric": {"pod": p}, "value": [1.0, v]} for p, v in pairs.items()]
        return {"status": "success", "data": {"resultType": "vector", "result": result}}

    async def query(request: web.Request) -> web.Response:
        q = request.query["query"]
        seen.append(q)
        if 'request_type="active"' in q:
            return web.json_response(vector({"a": "3"}))
        if "request_type" in q:
            return web.json_response(vector({"a": "8"}))
        if "kv_cache_block_type" in q:
            return web.json_response(vector({"a": "300" if '"used"' in q else "1000"}))
        if q.startswith("sum by (pod) (rate(nv_inference_request_success"):
            return web.json_response(vector({"a": "2", "b": "1"}))
        if "queue_duration" in q and "clamp_min" in q:
            return web.json_response(vector({"a": "0.5", "b": "NaN"}))
        return web.json_response(vector({"a": "4", "b": "2"}))

    app = web.Application()
    app.router.add_get("/api/v1/query", query)
    runner, port = await serve(app)
    try:
        src = source_for(session, f"http://127.0.0.1:{port}/")
        assert isinstance(src, PrometheusSource)
        pods = [PodRef("a", ready=True), PodRef("b", ready=True), PodRef("c", ready=False)]
        a, b, c = await src.samples(pods, "queueComputeRatio", namespace="bank-a")
        assert a.value == 0.5 and b.value is None and not c.ready
        assert a.load is not None and a.load.capacity == 8 and a.load.throughput == 2
        assert a.load.kv_used == 300 and a.load.kv_max == 1000 and a.load.active == 3  # what the cache holds
        assert b.load is not None and b.load.capacity is None and b.load.kv_used is None
        assert len(seen) == 9 and all('namespace="bank-a"' in q and 'pod=~"a|b"' in q for q in seen)

        down = PrometheusSource(session, "http://127.0.0.1:9/", timeout=0.5)
        [sample] = await down.samples([PodRef("a", ready=True)], "requestRate", namespace="x")
        assert sample.ready and sample.value is None
    finally:
        await runner.cleanup()


def test_source_for_picks_the_scrape_without_prometheus() -> None:
    async def make() -> None:
        async with aiohttp.ClientSession() as s:
            assert isinstance(source_for(s, ""), ScrapeSource)

    asyncio.run(make())


def test_samples_keep_pod_order(monkeypatch: pytest.MonkeyPatch) -> None:
    async def run() -> list[str]:
        async with aiohttp.ClientSession() as s:
            src = ScrapeSource(s)

            async def fetch(pod: PodRef) -> str | None:  # the first pod answers last
                await asyncio.sleep(0.01 if pod.name == "x" else 0)
                return triton_text()

            monkeypatch.setattr(src, "fetch", fetch)
            out = await src.samples([PodRef("x", "127.0.0.2", True), PodRef("y", "127.0.0.3", True)], "pendingRequests")
            return [p.pod for p in out]

    assert asyncio.run(run()) == ["x", "y"]
