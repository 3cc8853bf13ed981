"""Where the recommender's samples come from: Triton's /metrics directly, or Prometheus' API."""

from __future__ import annotations

import aiohttp

from meridian.autoscale.sources.base import MetricSource, PodRef
from meridian.autoscale.sources.prometheus import PrometheusSource, Selector, promql
from meridian.autoscale.sources.rates import CounterRateTracker, Increase
from meridian.autoscale.sources.scrape import TRITON_METRICS_PORT, ScrapeSource
from meridian.autoscale.sources.triton import TritonScrape, parse


def source_for(
    session: aiohttp.ClientSession, prometheus_url: str = "", port: int = TRITON_METRICS_PORT
) -> MetricSource:
    """PrometheusSource when a URL is configured (MERIDIAN_PROMETHEUS_URL), else a direct scrape of
    each pod's `port`.

    A ScrapeSource remembers counters between calls: create one per ModelDeployment and keep it.
    """
    if prometheus_url:
        return PrometheusSource(session, prometheus_url)
    return ScrapeSource(session, port=port)


__all__ = [
    "CounterRateTracker",
    "Increase",
    "MetricSource",
    "PodRef",
    "PrometheusSource",
    "ScrapeSource",
    "Selector",
    "TritonScrape",
    "parse",
    "promql",
    "source_for",
]
