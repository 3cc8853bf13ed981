"""Prometheus HTTP API source: the same metrics as the direct scrape, as PromQL instant queries.

Used when MERIDIAN_PROMETHEUS_URL is set (Prometheus already scrapes Triton, and its rate() over a
window is smoother than two 15 s scrapes). Series are selected by namespace and pod name, the labels
the usual kubernetes_sd relabelling gives; both label names are configurable. Every expression
returns one value per pod (`by (pod)`); a pod absent from the result, or NaN, is "missing".

queueComputeRatio: sum by (pod) (rate(queue_us[w])) / clamp_min(sum by (pod) (rate(compute_infer_us[w])), 1)
pendingRequests:   sum by (pod) (nv_inference_pending_request_count)
inFlightRequests:  (sum by (pod) (trtllm{request_type="active"}) or sum by (pod) (rate(compute_infer_us[w])) / 1e6)
                   + sum by (pod) (nv_inference_pending_request_count)
kvCacheUtilization: sum by (pod) (kv{type="used"}) / clamp_min(sum by (pod) (kv{type="max"}), 1)
gpuUtilization:    avg by (pod) (nv_gpu_utilization)
requestRate:       sum by (pod) (rate(nv_inference_request_success[w]))
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from meridian.api.modeldeployment import ScalingMetric
from meridian.autoscale.samples import PodLoad, PodSample
from meridian.autoscale.sources.base import PodRef
from meridian.autoscale.sources.triton import (
    COMPUTE_US,
    GPU_UTILIZATION,
    KV_BLOCKS,
    PENDING,
    QUEUE_US,
    SUCCESS,
    TRTLLM_REQUESTS,
)

_RE2_SPECIAL: Final = frozenset("\\.+*?()|[]{}^$")
BACKEND_FAMILIES: Final = frozenset({KV_BLOCKS, TRTLLM_REQUESTS})
LOAD_SIGNALS: Final = ("throughput", "busy", "waiting", "pending", "capacity", "kv_used", "kv_max", "active")


def _string(value: str) -> str:
    """A PromQL double-quoted string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _regex_escape(value: str) -> str:
    return "".join("\\" + c if c in _RE2_SPECIAL else c for c in value)


@dataclass(frozen=True, slots=True)
class Selector:
    """Which series belong to a ModelDeployment's pods."""

    namespace: str
    pods: tuple[str, ...]
    model: str | None = None
    pod_label: str = "pod"
    namespace_label: str = "namespace"

    def matchers(self, *extra: str, with_model: bool = True) -> str:
        parts = [f"{self.namespace_label}={_string(self.namespace)}"]
        pods = "|".join(_regex_escape(p) for p in sorted(self.pods))
        parts.append(f"{self.pod_label}=~{_string(pods)}")
        if with_model and self.model is not None:
            parts.append(f"model={_string(self.model)}")
        parts.extend(extra)
        return "{" + ",".join(parts) + "}"


def _sum_rate(family: str, sel: Selector, window: str) -> str:
    return f"sum by ({sel.pod_label}) (rate({family}{sel.matchers()}[{window}]))"


def _sum(family: str, sel: Selector, *extra: str) -> str:
    """TensorRT-LLM's own series sit under its inner model, whatever the model is called: as the
    direct scrape (triton.parse), they are never filtered by model name."""
    return f"sum by ({sel.pod_label}) ({family}{sel.matchers(*extra, with_model=family not in BACKEND_FAMILIES)})"


def _kv_blocks(sel: Selector, kind: str) -> str:
    return _sum(KV_BLOCKS, sel, f"kv_cache_block_type={_string(kind)}")


def _trtllm_requests(sel: Selector, kind: str) -> str:
    return _sum(TRTLLM_REQUESTS, sel, f"request_type={_string(kind)}")


def promql(metric: ScalingMetric, sel: Selector, window: str = "1m") -> str:
    """The instant query giving `metric` per pod of `sel`."""
    if metric == "queueComputeRatio":
        return f"{_sum_rate(QUEUE_US, sel, window)} / clamp_min({_sum_rate(COMPUTE_US, sel, window)}, 1)"
    if metric == "pendingRequests":
        return _sum(PENDING, sel)
    if metric == "inFlightRequests":
        running = _trtllm_requests(sel, "active")
        return f"({running} or {_sum_rate(COMPUTE_US, sel, window)} / 1e6) + {_sum(PENDING, sel)}"
    if metric == "kvCacheUtilization":
        return f"{_kv_blocks(sel, 'used')} / clamp_min({_kv_blocks(sel, 'max')}, 1)"
    if metric == "gpuUtilization":
        return f"avg by ({sel.pod_label}) ({GPU_UTILIZATION}{sel.matchers(with_model=False)})"
    return _sum_rate(SUCCESS, sel, window)


def load_queries(sel: Selector, window: str = "1m") -> dict[str, str]:
    """The queries for PodLoad's fields (the meridian policy's queueing signals)."""
    return {
        "throughput": _sum_rate(SUCCESS, sel, window),
        "busy": f"{_sum_rate(COMPUTE_US, sel, window)} / 1e6",
        "waiting": f"{_sum_rate(QUEUE_US, sel, window)} / 1e6",
        "pending": _sum(PENDING, sel),
        "capacity": _trtllm_requests(sel, "max"),
        "kv_used": _kv_blocks(sel, "used"),
        "kv_max": _kv_blocks(sel, "max"),
        "active": _trtllm_requests(sel, "active"),
    }


def parse_vector(body: Mapping[str, Any], pod_label: str = "pod") -> dict[str, float]:
    """pod → value from an /api/v1/query answer; NaN and infinities are dropped (missing)."""
    if body.get("status") != "success":
        raise PrometheusError(str(body.get("error") or "query failed"))
    data = body.get("data") or {}
    if data.get("resultType") != "vector":
        raise PrometheusError(f"expected a vector, got {data.get('resultType')}")
    values: dict[str, float] = {}
    for item in data.get("result") or ():
        pod = (item.get("metric") or {}).get(pod_label)
        try:
            value = float(item["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        if pod and math.isfinite(value):
            values[pod] = value
    return values


class PrometheusError(Exception):
    """Prometheus answered, but not with a usable vector."""


async def instant_query(session: aiohttp.ClientSession, base: str, expr: str, limit: aiohttp.ClientTimeout) -> Any:
    """Prometheus' JSON answer to an instant query (GET <base>/api/v1/query); raises what aiohttp
    raises, TimeoutError, or ValueError for a body that is not JSON."""
    async with session.get(base.rstrip("/") + "/api/v1/query", params={"query": expr}, timeout=limit) as resp:
        return await resp.json(content_type=None)


class PrometheusSource:
    """A MetricSource backed by Prometheus' HTTP API (GET /api/v1/query)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        window: str = "1m",
        timeout: float = 5.0,
        pod_label: str = "pod",
        namespace_label: str = "namespace",
        with_load: bool = True,
    ) -> None:
        self._session = session
        self._url = url
        self._window = window
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._pod_label = pod_label
        self._namespace_label = namespace_label
        self._with_load = with_load

    async def query(self, expr: str) -> dict[str, float] | None:
        """pod → value, or None if Prometheus cannot be asked (every pod is then missing)."""
        try:
            return parse_vector(await instant_query(self._session, self._url, expr, self._timeout), self._pod_label)
        except (aiohttp.ClientError, TimeoutError, ValueError, PrometheusError):
            return None

    def problems(self) -> list[str]:
        """Prometheus answers for every pod at once; what it cannot answer raises instead."""
        return []

    async def samples(
        self, pods: Sequence[PodRef], metric: ScalingMetric, *, namespace: str, model: str | None = None
    ) -> list[PodSample]:
        ready = [p for p in pods if p.ready]
        if not ready:
            return [PodSample(pod=p.name, ready=False) for p in pods]
        sel = Selector(namespace, tuple(p.name for p in ready), model, self._pod_label, self._namespace_label)
        exprs = [promql(metric, sel, self._window)]
        if self._with_load:
            exprs += list(load_queries(sel, self._window).values())
        results = await asyncio.gather(*(self.query(e) for e in exprs))
        values = results[0] or {}
        signals = dict(zip(LOAD_SIGNALS, results[1:], strict=False))
        return [
            PodSample(pod=p.name, ready=True, value=values.get(p.name), load=_load(p.name, signals))
            if p.ready
            else PodSample(pod=p.name, ready=False)
            for p in pods
        ]


def _load(pod: str, signals: Mapping[str, dict[str, float] | None]) -> PodLoad | None:
    def get(name: str) -> float | None:
        return (signals.get(name) or {}).get(pod)

    throughput, busy, waiting = get("throughput"), get("busy"), get("waiting")
    if throughput is None or busy is None or waiting is None:
        return None
    return PodLoad(
        throughput, busy, waiting, get("pending") or 0.0, get("capacity"), get("kv_used"), get("kv_max"), get("active")
    )
