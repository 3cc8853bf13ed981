"""Why a pod is Pending, in the scheduler's own words: a capacity shortfall, or something a person must fix.

Only a shortfall of the region (GPUs or CPU taken, nodes gone, cordoned or not ready) is a reason
to move replicas elsewhere. A missing PersistentVolumeClaim, a taint nobody tolerates or a volume
that binds nowhere is the same in every region: moving would only spread the failure, so the model
is Stalled with the scheduler's message instead.

Recent kube-schedulers no longer name the taint ("4 node(s) had untolerated taint(s)"). Then the
region's own count decides: taints on no more nodes than the region has not Ready are the node
lifecycle controller's (not-ready, unreachable), a shortfall; on more, someone's taint, a Problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from meridian.api.region import Region
from meridian.placement.types import Problem
from meridian.render.labels import REGION_LABEL
from meridian.render.names import label_value

# per-node reasons (kube-scheduler's filter messages) that mean "no room here", not "never here"
CAPACITY = (
    re.compile(r"^Insufficient "),
    re.compile(r"^Too many pods"),
    re.compile(r"didn't match Pod's node affinity/selector"),  # the region has no matching node (left)
    re.compile(r"were unschedulable"),  # cordoned
    re.compile(r"had untolerated taint.*\{node\.kubernetes\.io/"),  # not ready, unreachable, under pressure
    re.compile(r"didn't match pod topology spread constraints"),
)


# a taint the scheduler does not name: whose it is, the region's count of nodes not Ready tells
UNNAMED_TAINT = re.compile(r"had untolerated taint\(s\)$")


def reasons(message: str) -> list[tuple[int, str]]:
    """'0/9 nodes are available: 3 Insufficient cpu, 6 node(s) ... . preemption: ...' → (nodes, reason) each."""
    head = message.split(" preemption:", 1)[0]
    if ":" not in head:
        return [(0, head.strip().rstrip("."))] if head.strip() else []
    body = head.split(":", 1)[1].strip().rstrip(".")
    out = []
    for part in (p.strip() for p in body.split(", ") if p.strip()):
        count = re.match(r"^(\d+) ", part)
        out.append((int(count.group(1)) if count else 0, part[count.end() :] if count else part))
    return out


def is_capacity(message: str, unready_nodes: int = 0) -> bool:
    """A shortfall of room (failover may help), rather than a spec or cluster problem (it cannot).
    `unready_nodes`: nodes of the pod's region that are not Ready (or not schedulable)."""
    found = reasons(message)
    if not found or "no nodes available" in message or re.search(r"\b0/0 nodes", message):
        return True
    return all(
        any(p.search(r) for p in CAPACITY) or (UNNAMED_TAINT.search(r) is not None and 0 < n <= unready_nodes)
        for n, r in found
    )


def unschedulable_condition(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod's PodScheduled=False condition with reason Unschedulable, if the scheduler gave up on it."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        scheduled = cond.get("type") == "PodScheduled" and cond.get("status") == "False"
        if scheduled and cond.get("reason") == "Unschedulable":
            return dict(cond)
    return None


def pending_problems(pods: Iterable[Mapping[str, Any]], unready: Mapping[str, int] | None = None) -> list[Problem]:
    """Pods the scheduler will never place wherever they go: one Problem, with its message.
    `unready`: nodes not Ready per region label value (the pods' region label)."""
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        cond = unschedulable_condition(pod)
        message = None if cond is None else str(cond.get("message") or "")
        if message is not None and not is_capacity(message, (unready or {}).get(region_label(pod), 0)):
            return [Problem("Unschedulable", f"pod {pod['metadata']['name']}: {message}")]
    return []


def region_label(pod: Mapping[str, Any]) -> str:
    return str(((pod.get("metadata") or {}).get("labels") or {}).get(REGION_LABEL, ""))


def unready_nodes(regions: Iterable[Region]) -> dict[str, int]:
    """Region label value → how many of its nodes are not Ready and schedulable, as last observed."""
    return {label_value(r.name): max(0, r.status.nodes - r.status.ready_nodes) for r in regions}
