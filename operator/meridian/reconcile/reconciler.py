"""One level-triggered reconcile of a ModelDeployment: observe, plan, render, apply, prune, report.

Safe to run any number of times: it writes only what differs from what is live, so a reconcile with
nothing changed makes no write request at all.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from meridian import API_VERSION
from meridian.api.modeldeployment import ModelDeployment
from meridian.api.region import Region
from meridian.config import Settings
from meridian.log import get as get_logger
from meridian.placement.plan import Hold, Plan, Problem, plan
from meridian.reconcile import events
from meridian.reconcile.autoscaler import desired_total
from meridian.reconcile.insync import in_sync
from meridian.reconcile.kube import Kube
from meridian.reconcile.metrics import PLACEMENT_MOVES
from meridian.reconcile.observe import observe
from meridian.reconcile.status import build_status, same_status
from meridian.render.children import children
from meridian.render.labels import MD_LABEL
from meridian.runtime.failures import pod_failure
from meridian.runtime.validate import spec_problems as runtime_spec_problems

CHILD_KINDS = (
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("policy/v1", "PodDisruptionBudget"),
)


@dataclass
class Outcome:
    """What one reconcile did; tests and metrics read it."""

    applied: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    status_written: bool = False
    problems: list[Problem] = field(default_factory=list)
    satisfied: bool = True
    regions: set[str] = field(default_factory=set)
    held: Mapping[str, Hold] | None = None  # the planner's failover memory, for the next pass


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def _owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj.get("metadata", {}).get("ownerReferences", []) or [])


# Failures a restart cannot fix: stall at once. Anything else stalls after a few restarts.
PERMANENT_FAILURES = {
    "EngineMismatch",
    "ModelFetchFailed",
    "ModelRepositoryInvalid",
    "ModelLoadFailed",
    "StorageCredentialsInvalid",
    "ContainerConfigInvalid",
    "ImagePullFailed",
    "OutOfMemory",
}
RESTARTS_BEFORE_STALLED = 3


def pod_problems(pods: list[dict[str, Any]]) -> list[Problem]:
    """What keeps this model's pods from serving that a person must fix, one Problem per reason."""
    found: dict[str, Problem] = {}
    for pod in pods:
        failure = pod_failure(pod)
        if failure is None or failure.reason in found:
            continue
        if failure.reason in PERMANENT_FAILURES or failure.restarts >= RESTARTS_BEFORE_STALLED:
            found[failure.reason] = Problem(failure.reason, f"pod {pod['metadata']['name']}: {failure.message}")
    return [found[r] for r in sorted(found)]


def newly_stalled(md: ModelDeployment, reason: str) -> bool:
    """The Stalled condition does not already say this: an Event is due (not one per reconcile)."""
    stalled = next((c for c in md.status.conditions if c.type == "Stalled"), None)
    return stalled is None or stalled.status != "True" or stalled.reason != reason


def residency_check(md: ModelDeployment, p: Plan, regions: list[Region]) -> tuple[bool, str]:
    """Verify the plan itself: every region it uses carries every required jurisdiction."""
    required = set(md.spec.placement.residency)
    if not required:
        return True, "no residency required"
    by_name = {r.name: r for r in regions}
    bad = [
        t.region
        for t in p.targets
        if t.region not in by_name or not required <= set(by_name[t.region].spec.jurisdictions)
    ]
    if bad:
        return False, f"regions {', '.join(bad)} lack required jurisdictions {sorted(required)}"
    return True, f"every replica is placed in regions carrying {', '.join(sorted(required))}"


async def reconcile(
    kube: Kube,
    body: Mapping[str, Any],
    settings: Settings,
    held: Mapping[str, Hold] | None = None,
) -> Outcome:
    meta = body.get("metadata", {})
    log = get_logger("meridian.reconcile", namespace=meta.get("namespace"), name=meta.get("name"))
    out = Outcome()
    try:
        md = ModelDeployment.model_validate(dict(body))
    except ValidationError as e:  # the schema should have caught it; never crash on it
        log.error("invalid spec", error=str(e))
        return out
    ns, name = md.metadata.namespace, md.metadata.name
    if md.spec.paused:
        await _write_status(kube, md, Plan(md.spec.replicas), observe([], []), [], (True, ""), out)
        return out

    selector = f"{MD_LABEL}={name}"
    regions = [Region.model_validate(r) for r in await kube.list(API_VERSION, "Region")]
    live: dict[tuple[str, str], dict[str, Any]] = {}
    for api_version, kind in CHILD_KINDS:
        for obj in await kube.list(api_version, kind, ns, selector):
            if _owned_by(obj, md.metadata.uid):
                live[_key(obj)] = obj
    pods = await kube.list("v1", "Pod", ns, selector)
    obs = observe([o for o in live.values() if o["kind"] == "Deployment"], pods)
    p = plan(md.spec, regions, obs.for_planner(time.time(), held), desired_total(md))
    if not p.stalled:
        out.held = p.held
    out.regions = {t.region for t in p.targets} | set(obs.regions)
    residency = residency_check(md, p, regions)

    spec_problems = [*p.problems, *runtime_spec_problems(md)]
    if spec_problems:
        out.problems = spec_problems
        if newly_stalled(md, spec_problems[0].reason):
            for problem in spec_problems:
                await events.post(kube, md, problem.reason, problem.message, warning=True)
        log.warning("stalled", reasons=[x.reason for x in spec_problems])
        await _write_status(kube, md, p, obs, out.problems, residency, out)
        return out
    if not residency[0]:  # a planner bug must never reach the cluster
        out.problems = [Problem("ResidencyViolation", residency[1])]
        await events.post(kube, md, "ResidencyViolation", residency[1], warning=True)
        await _write_status(kube, md, p, obs, out.problems, residency, out)
        return out

    desired = children(md, p, settings)
    for obj in desired:
        current = live.get(_key(obj))
        if current is not None and in_sync(obj, current):
            continue
        await kube.apply(obj)
        out.applied.append(f"{obj['kind']}/{obj['metadata']['name']}")
        if obj["kind"] == "Deployment":
            before = current["spec"].get("replicas") if current else None
            after = obj["spec"]["replicas"]
            if current is None:
                await events.post(kube, md, "Created", f"Deployment {obj['metadata']['name']} with {after} replicas")
            elif before != after:
                await events.post(kube, md, "Scaled", f"Deployment {obj['metadata']['name']}: {before} → {after}")

    for move in p.moves:
        if move.kind == "Scale":  # Created/Scaled events already say it
            continue
        PLACEMENT_MOVES.labels(move.kind).inc(move.count)
        where = f"{move.from_region or 'new'} → {move.to_region or 'removed'}"
        await events.post(
            kube,
            md,
            move.kind,
            f"{move.count} replica(s) {where}: {move.reason}",
            warning=move.kind in ("Failover", "Evict"),
        )

    wanted = {_key(o) for o in desired}
    for key, obj in sorted(live.items()):
        if key in wanted:
            continue
        if await kube.delete(obj["apiVersion"], obj["kind"], ns, key[1]):
            out.pruned.append(f"{key[0]}/{key[1]}")
            await events.post(kube, md, "Pruned", f"{key[0]} {key[1]} is no longer planned")

    if out.applied or out.pruned:
        log.info("applied", applied=out.applied, pruned=out.pruned)
    failures = pod_problems(pods)
    if failures:
        if newly_stalled(md, failures[0].reason):
            await events.post(kube, md, failures[0].reason, failures[0].message, warning=True)
        log.warning("pods failing", reason=failures[0].reason, message=failures[0].message)
    out.problems = failures
    await _write_status(kube, md, p, obs, failures, residency, out)
    return out


async def _write_status(
    kube: Kube,
    md: ModelDeployment,
    p: Plan,
    obs: Any,
    problems: list[Problem],
    residency: tuple[bool, str],
    out: Outcome,
) -> None:
    status = build_status(md, p, obs, now=events.now_iso(), problems=problems, residency_ok=residency)
    out.satisfied = all(
        c["status"] == "True" for c in status["conditions"] if c["type"] in ("Ready", "PlacementSatisfied")
    )
    old = md.status.wire()
    if same_status(status, old):
        return
    try:
        await kube.apply_status("ModelDeployment", md.metadata.namespace, md.metadata.name, status)
        out.status_written = True
    except ApiException as e:
        if e.status != 404:  # deleted while we worked: nothing to report on
            raise
