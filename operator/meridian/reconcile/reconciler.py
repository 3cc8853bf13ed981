"""The shell around one pure pass: gather the World, run `sync`, carry the Decision out.

Execution order is fixed: evictions first (nothing after them can stop them), then applies, prunes,
status, and last the best-effort Events and log records. Status is written even when an apply
fails: a refusal the API server will repeat (403, 422) stalls the model with its message; anything
else keeps it unready and is retried.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from meridian.api.modeldeployment import ModelDeployment
from meridian.api.region import Region
from meridian.config import Settings
from meridian.log import get as get_logger
from meridian.placement.types import Hold
from meridian.reconcile import events
from meridian.reconcile.caches import Caches
from meridian.reconcile.kube import Kube, api_message
from meridian.reconcile.metrics import PLACEMENT_MOVES, RESIDENCY_EVICTIONS, RESIDENCY_VIOLATIONS
from meridian.reconcile.projections import controller_ref, holder
from meridian.render.names import label_value
from meridian.sync import ApplyFailure, Decision, World, sync


@dataclass
class Outcome:
    """What one reconcile did; the handlers keep its memory and requeue by its regions."""

    decision: Decision | None = None
    applied: list[str] = field(default_factory=list)
    held: Mapping[str, Hold] | None = None
    namespace_going: bool = False  # a write was refused: the namespace is being deleted

    @property
    def satisfied(self) -> bool:
        return self.decision is None or self.decision.satisfied

    @property
    def regions(self) -> frozenset[str]:
        return self.decision.regions if self.decision else frozenset()


def gather(
    caches: Caches,
    regions: tuple[Region, ...],
    md: ModelDeployment,
    settings: Settings,
    held: Mapping[str, Hold] | None,
) -> World:
    """The World from the watch caches, and the Regions with their capacity as observed now: no
    request to the API server."""
    ns, label = md.metadata.namespace, label_value(md.metadata.name)
    pods = caches.pods_of(ns, label)
    return World(
        model=md,
        regions=regions,
        owned=caches.owned(ns, md.metadata.uid),
        pods=tuple(p for p in pods if controller_ref(p).get("kind") == "ReplicaSet"),
        claims=caches.claims(),
        namespace_residency=caches.namespace_residency(ns),
        held=dict(held or {}),
        now=time.time(),
        settings=settings,
        unserved=caches.unserved(),
        unreachable=caches.unreachable(),
        promised=caches.promised(ns, label),
    )


async def reconcile(
    kube: Kube,
    caches: Caches,
    regions: tuple[Region, ...],
    body: Mapping[str, Any],
    settings: Settings,
    held: Mapping[str, Hold] | None = None,
    evict_only: bool = False,
) -> Outcome:
    """`evict_only`: the namespace is being deleted, so nothing can be created there; a replica
    that may not stay where it runs is still removed."""
    meta = body.get("metadata", {})
    log = get_logger("meridian.reconcile", namespace=meta.get("namespace"), name=meta.get("name"))
    try:
        md = ModelDeployment.model_validate(dict(body))
    except ValidationError as e:  # the schema should have caught it; never crash on it
        log.error("invalid spec", error=str(e))
        return Outcome()
    world = gather(caches, regions, md, settings, held)
    decision = sync(world)
    out = Outcome(decision=decision, held=decision.held)
    expected = [] if evict_only else _deployments(decision)
    caches.expect(expected)  # before the first await: the next model's plan counts these GPUs
    await evict(kube, md, decision, log)
    if evict_only:
        return out
    try:
        taken = await apply_all(kube, world, decision, out)
        if taken:  # a name we would create is someone else's: decide again, knowing it
            caches.unexpect(expected)
            world = replace(world, foreign=taken)
            decision = sync(world)
            out.decision, out.held = decision, decision.held
        for prune in decision.prunes:
            await kube.delete(prune.api_version, prune.kind, md.metadata.namespace, prune.name)
    except (ApiException, TimeoutError, OSError) as e:
        caches.unexpect(expected)
        failure = _failure(e, out, decision)
        if namespace_going(failure, md.metadata.namespace):
            # the namespace is being deleted, the model with it: nothing to create, nothing to report
            log.info("namespace is being deleted; nothing created", object=failure.object)
            out.namespace_going = True
            return out
        log.warning("write failed", object=failure.object, status=failure.status, error=failure.message)
        again = sync(_with_failure(world, failure))
        await _write_status(kube, md, again)
        await _report(kube, md, again, log)
        out.decision = again
        if failure.permanent:
            return out
        raise
    if out.applied or decision.prunes:
        log.info("applied", applied=out.applied, pruned=[f"{p.kind}/{p.name}" for p in decision.prunes])
    await _write_status(kube, md, decision)
    await _report(kube, md, decision, log)
    return out


def _deployments(decision: Decision) -> list[dict[str, Any]]:
    return [o for o in decision.applies if o["kind"] == "Deployment"]


def namespace_going(failure: ApplyFailure, namespace: str) -> bool:
    """The write was refused because the model's namespace is being deleted (NamespaceLifecycle's 403)
    or is gone already (404 for the namespace itself, not for the object)."""
    if failure.status == 403:
        return "because it is being terminated" in failure.message
    return failure.status == 404 and f'namespaces "{namespace}" not found' in failure.message


async def evict(kube: Kube, md: ModelDeployment, decision: Decision, log: Any) -> None:
    """Scale each evicted Deployment to zero and delete it; delete violating pods with no grace."""
    ns = md.metadata.namespace
    for e in decision.evictions:
        if e.kind == "Deployment":
            try:
                await kube.patch("apps/v1", "Deployment", ns, e.name, {"spec": {"replicas": 0}})
            except ApiException as error:
                if error.status != 404:
                    raise
            await kube.delete("apps/v1", "Deployment", ns, e.name)
        else:
            where = kube.member(e.cluster) if e.cluster else kube
            await where.delete("v1", "Pod", ns, e.name, grace_seconds=0)
        RESIDENCY_EVICTIONS.labels(e.kind).inc()
        log.warning("evicted", kind=e.kind, object=e.name, region=e.region, reason=e.reason)


async def apply_all(kube: Kube, world: World, decision: Decision, out: Outcome) -> dict[tuple[str, str], str]:
    """Apply every object of the Decision, in order. A name the model does not hold yet is only
    created, never taken over: when the API server says it exists, the object is read once, and
    unless this model controls it (a child our cache has not seen yet) applying stops there and
    the name is returned with who holds it."""
    md = world.model
    for obj in decision.applies:
        key = (obj["kind"], obj["metadata"]["name"])
        if key in world.owned:
            await kube.apply(obj)
        else:
            try:
                await kube.create_only(obj)
            except ApiException as e:
                if e.status != 409:
                    raise
                live = await kube.get(obj["apiVersion"], key[0], md.metadata.namespace, key[1])
                if live is None:  # gone again meanwhile: the next pass creates it
                    raise
                uid, who = holder(live)
                if uid != md.metadata.uid:
                    return {key: who}
                await kube.apply(obj)
        out.applied.append(f"{key[0]}/{key[1]}")
    return {}


def _failure(error: BaseException, out: Outcome, decision: Decision) -> ApplyFailure:
    done = len(out.applied)
    obj = decision.applies[done] if done < len(decision.applies) else None
    what = f"{obj['kind']}/{obj['metadata']['name']}" if obj else "prune"
    if isinstance(error, ApiException):
        return ApplyFailure(what, int(error.status or 0), api_message(error))
    return ApplyFailure(what, 0, f"API server did not answer: {error!r}")


def _with_failure(world: World, failure: ApplyFailure) -> World:
    return replace(world, apply_failure=failure)


async def _write_status(kube: Kube, md: ModelDeployment, decision: Decision) -> None:
    if decision.status is None:
        return
    try:
        await kube.apply_status("ModelDeployment", md.metadata.namespace, md.metadata.name, decision.status)
    except ApiException as e:
        if e.status != 404:  # deleted while we worked: nothing to report on
            raise


async def _report(kube: Kube, md: ModelDeployment, decision: Decision, log: Any) -> None:
    """Events and log records: best-effort, after every write that matters."""
    for record in decision.records:
        if record.event == "residency.violation":
            RESIDENCY_VIOLATIONS.inc()
        (log.info if record.event == "residency.placement" else log.warning)(record.event, **record.fields)
    for note in decision.notes:
        if note.reason in ("Failover", "Drain", "Capacity", "Rebalance"):
            PLACEMENT_MOVES.labels(note.reason).inc()
        await events.post(kube, md, note.reason, note.message, warning=note.warning)
    if decision.problems:
        log.warning("stalled", reasons=[p.reason for p in decision.problems])
