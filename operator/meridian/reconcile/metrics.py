"""The operator's own Prometheus metrics (served on settings.metrics_port)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

RECONCILES = Counter("meridian_reconciles_total", "Reconciles run, by result.", ["result"])
RECONCILE_SECONDS = Histogram(
    "meridian_reconcile_duration_seconds", "Time one reconcile takes.", buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5)
)
API_WRITES = Counter("meridian_api_writes_total", "Write requests Meridian sent to the API server.", ["verb", "kind"])
PLACEMENT_MOVES = Counter(
    "meridian_placement_moves_total", "Placement moves between regions (one per Event), by reason.", ["reason"]
)
SCALE_EVENTS = Counter("meridian_scale_events_total", "Changes of a ModelDeployment's desired total.", ["direction"])
EVENTS_DROPPED = Counter("meridian_events_dropped_total", "Events the API server did not store, by reason.", ["reason"])
RESIDENCY_EVICTIONS = Counter(
    "meridian_residency_evictions_total", "Deployments and pods removed for residency, by kind.", ["kind"]
)
RESIDENCY_VIOLATIONS = Counter("meridian_residency_violations_total", "Pods found where residency forbids them.")
CACHE_RELISTS = Counter(
    "meridian_cache_relists_total", "Full LISTs after the first, when a watch could not resume, by kind.", ["kind"]
)


def serve(port: int) -> None:
    if port > 0:
        start_http_server(port)
