"""Why a pod is Pending, in the scheduler's own words: a capacity shortfall, or something a person must fix.

Only a shortfall of the region (GPUs or CPU taken, nodes gone, cordoned or not ready) is a reason
to move replicas elsewhere. A missing PersistentVolumeClaim, a taint nobody tolerates or a volume
that binds nowhere is the same in every region: moving would only spread the failure, so the model
is Stalled with the scheduler's message instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from meridian.placement.types import Problem

# per-node reasons (kube-scheduler's filter messages) that mean "no room here", not "never here"
CAPACITY = (
    re.compile(r"^Insufficient "),
    re.compile(r"^Too many pods"),
    re.compile(r"didn't match Pod's node affinity/selector"),  # the region has no matching node (left)
    re.compile(r"were unschedulable"),  # cordoned
    re.compile(r"had untolerated taint.*\{node\.kubernetes\.io/"),  # not ready, unreachable, under pressure
    re.compile(r"didn't match pod topology spread constraints"),
)


def reasons(message: str) -> list[str]:
    """'0/9 nodes are available: 3 Insufficient cpu, 6 node(s) ... . preemption: ...' → the reasons."""
    head = message.split(" preemption:", 1)[0]
    if ":" not in head:
        return [head.strip().rstrip(".")] if head.strip() else []
    body = head.split(":", 1)[1].strip().rstrip(".")
    return [re.sub(r"^\d+ ", "", part.strip()) for part in body.split(", ") if part.strip()]


def is_capacity(message: str) -> bool:
    """A shortfall of room (failover may help), rather than a spec or cluster problem (it cannot)."""
    found = reasons(message)
    if not found or "no nodes available" in message or re.search(r"\b0/0 nodes", message):
        return True
    return all(any(p.search(r) for p in CAPACITY) for r in found)


def unschedulable_condition(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod's PodScheduled=False condition with reason Unschedulable, if the scheduler gave up on it."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        scheduled = cond.get("type") == "PodScheduled" and cond.get("status") == "False"
        if scheduled and cond.get("reason") == "Unschedulable":
            return dict(cond)
    return None


def pending_problems(pods: Iterable[Mapping[str, Any]]) -> list[Problem]:
    """Pods the scheduler will never place wherever they go: one Problem, with its message."""
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        cond = unschedulable_condition(pod)
        message = None if cond is None else str(cond.get("message") or "")
        if message is not None and not is_capacity(message):
            return [Problem("Unschedulable", f"pod {pod['metadata']['name']}: {message}")]
    return []
