"""Counting the operator's requests from the API server's audit log: by its user agents only, in the window."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from meridian.sim.audit import operator_requests, summary

pytestmark = pytest.mark.unit


def line(agent: str, verb: str, resource: str, at: str, sub: str = "", ns: str = "", name: str = "") -> str:
    ref = {"resource": resource, "namespace": ns, "name": name, **({"subresource": sub} if sub else {})}
    return json.dumps({"userAgent": agent, "verb": verb, "objectRef": ref, "requestReceivedTimestamp": at})


def test_only_the_operators_requests_inside_the_window_count() -> None:
    lines = [
        line("meridian/0.2.0", "list", "pods", "2026-12-02T10:00:01.000000Z"),
        line("kopf/1.45.2", "patch", "modeldeployments", "2026-12-02T10:00:02.500000Z", "status", "team-a", "llama"),
        line("kwok/v0.8.0", "patch", "nodes", "2026-12-02T10:00:02.000000Z", "status"),
        line("meridian/0.2.0", "watch", "pods", "2026-12-02T10:00:03.000000Z"),
        line("meridian/0.2.0", "get", "pods", "2026-12-02T10:00:09.000000Z"),  # after the window
        "{torn",
    ]
    start = 1796205600.0  # 2026-12-02T10:00:00Z
    seen = list(operator_requests(lines, start, start + 5))
    counts = Counter((r.verb, r.resource) for r in seen)
    assert str(seen[1]) == "patch modeldeployments/status team-a/llama (kopf/1.45.2)"
    assert counts == {("list", "pods"): 1, ("patch", "modeldeployments/status"): 1, ("watch", "pods"): 1}
    assert summary(counts) == {"list": 1, "get": 0, "watch": 1, "write": 1}
