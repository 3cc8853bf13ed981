"""The status a ModelDeployment should have: kstatus conditions plus what users look at.

Pure: a function of the object, the plan and what was observed. kstatus meaning: Reconciling=True
while the world is catching up with the spec, Stalled=True when it cannot without a human, Ready=True
when every desired replica serves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meridian.api.modeldeployment import ModelDeployment
from meridian.placement.plan import Plan, Problem
from meridian.render.labels import selector_string
from meridian.render.service import endpoints
from meridian.sync.insync import in_sync
from meridian.sync.observe import Observation


@dataclass(frozen=True)
class Cond:
    type: str
    status: bool
    reason: str
    message: str = ""


def _conditions(
    md: ModelDeployment,
    plan: Plan,
    obs: Observation,
    problems: Sequence[Problem],
    residency_ok: tuple[bool, str],
    progress_problem: Problem | None,
) -> list[Cond]:
    if md.spec.paused:
        return [
            Cond("Ready", False, "Paused", "spec.paused is true: children are left as they are, but for evictions"),
            Cond("Reconciling", False, "Paused"),
            Cond("Stalled", False, "Paused"),
            _residency(residency_ok),
        ]
    if problems:
        first = problems[0]
        message = "; ".join(p.message for p in problems)
        return [
            Cond("Ready", False, first.reason, message),
            Cond("Reconciling", False, first.reason),
            Cond("Stalled", True, first.reason, message),
            Cond("PlacementSatisfied", False, first.reason, message),
            _residency(residency_ok),
        ]
    want = plan.total
    ready = obs.ready
    unschedulable = sum(r.unschedulable for r in obs.regions.values())
    all_ready = ready >= want and obs.replicas == want and obs.rolled_out and progress_problem is None
    if progress_problem is not None:  # a write failed for a reason that may pass: retried, not stalled
        ready_cond = Cond("Ready", False, progress_problem.reason, progress_problem.message)
    elif all_ready and want == 0 and _idle(md):
        ready_cond = Cond("Ready", True, "ScaledToZero", _idle_message(md))
    else:
        reason = "AllReplicasReady" if all_ready else "ReplicasNotReady"
        ready_cond = Cond("Ready", all_ready, reason, f"{ready}/{want} replicas ready")
    conds = [
        ready_cond,
        Cond(
            "Reconciling",
            not all_ready,
            "Progressing" if not all_ready else "UpToDate",
            "" if all_ready else f"{ready}/{want} replicas ready",
        ),
        Cond("Stalled", False, "Reconciled"),
    ]
    if unschedulable:
        conds.append(
            Cond(
                "PlacementSatisfied",
                False,
                "ReplicasUnschedulable",
                f"{unschedulable} replicas cannot be scheduled in their region",
            )
        )
    elif plan.displaced:
        conds.append(Cond("PlacementSatisfied", False, "ReplicasDisplaced", plan.message))
    elif not plan.satisfied:
        conds.append(Cond("PlacementSatisfied", False, "InsufficientCapacity", plan.message))
    else:
        placed = sum(t.replicas for t in plan.targets)
        conds.append(Cond("PlacementSatisfied", True, "Placed", f"{placed} replicas placed"))
    conds.append(_residency(residency_ok))
    return conds


def _idle(md: ModelDeployment) -> bool:
    """Scaled to zero on purpose by the autoscaler (minReplicas 0), which is what was asked for."""
    return md.spec.autoscaling.enabled and md.status.autoscaling is not None and bool(md.status.autoscaling.idle)


def _idle_message(md: ModelDeployment) -> str:
    a = md.status.autoscaling
    since = f" since {a.idle_since}" if a and a.idle_since else ""
    wakes = "; ".join(a.wake_on) if a and a.wake_on else "kubectl scale"
    return f"idle{since}: no replicas until woken by {wakes}"


def _residency(residency_ok: tuple[bool, str]) -> Cond:
    ok, message = residency_ok
    return Cond("ResidencyCompliant", ok, "Compliant" if ok else "Violation", message)


def _merge(
    conds: Sequence[Cond], previous: Sequence[Mapping[str, Any]], generation: int, now: str
) -> list[dict[str, Any]]:
    """Keep lastTransitionTime when a condition's status did not change."""
    before = {c.get("type"): c for c in previous}
    out = []
    for c in conds:
        status = "True" if c.status else "False"
        old = before.get(c.type)
        since = old.get("lastTransitionTime") if old and old.get("status") == status else None
        out.append(
            {
                "type": c.type,
                "status": status,
                "reason": c.reason,
                "message": c.message,
                "lastTransitionTime": since or now,
                "observedGeneration": generation,
            }
        )
    return out


def build_status(
    md: ModelDeployment,
    plan: Plan,
    obs: Observation,
    *,
    now: str,
    problems: Sequence[Problem] = (),
    residency_ok: tuple[bool, str] = (True, ""),
    progress_problem: Problem | None = None,
) -> dict[str, Any]:
    """`problems` stall the model; `progress_problem` (a failed write to retry) only keeps it unready."""
    previous = [c.wire() for c in md.status.conditions]
    conds = _merge(
        _conditions(md, plan, obs, problems, residency_ok, progress_problem), previous, md.metadata.generation, now
    )
    regions = []
    for t in plan.targets if not plan.stalled else ():
        r = obs.regions.get(t.region)
        regions.append(
            {
                "name": t.region,
                "desiredReplicas": t.replicas,
                "readyReplicas": r.ready if r else 0,
                "unschedulableReplicas": r.unschedulable if r else 0,
                "reason": t.reason,
            }
        )
    return {
        "observedGeneration": md.metadata.generation,
        "conditions": conds,
        "modelName": md.model_name,
        "replicas": obs.replicas,
        "readyReplicas": obs.ready,
        "desiredReplicas": plan.total,
        "selector": selector_string(md),
        "regionSummary": ",".join(f"{t.region}={t.replicas}" for t in plan.targets) if not plan.stalled else "",
        "regions": regions,
        "endpoints": endpoints(md),
    }


def same_status(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Equal apart from fields we did not set; decides whether a status write is needed."""
    return in_sync(dict(new), dict(old)) and len(new.get("conditions", [])) == len(old.get("conditions", []))
