"""One reconcile pass, pure: `sync(World) -> Decision`.

The order of thought is the order of execution: first what must stop (evictions, from what is
live, whatever the plan says), then what the plan asks for (applies, only over objects this model
controls), then what is no longer planned (prunes), then status proven from the pods, then Events
and log records. Nothing here performs I/O; the shell in reconcile/ carries the Decision out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from meridian.api.modeldeployment import ModelDeployment
from meridian.api.region import Region
from meridian.autoscale.idle import wake_problems
from meridian.placement.capacity import grace_ends_in
from meridian.placement.failover import next_change
from meridian.placement.plan import Plan, plan
from meridian.placement.types import Hold, Observed, Problem
from meridian.render.children import children
from meridian.render.labels import REGION_LABEL
from meridian.render.names import label_value
from meridian.render.reach import karmada_problems, propagation_policies
from meridian.runtime.validate import spec_problems as runtime_spec_problems
from meridian.sync.decision import Decision, Eviction, Note, Prune, Record
from meridian.sync.evictions import evictions, namespace_mismatch, region_of_child, untrusted_regions
from meridian.sync.insync import in_sync
from meridian.sync.observe import observe
from meridian.sync.pending import pending_problems, unready_nodes
from meridian.sync.residency import Proof, prove, required_tags
from meridian.sync.routing import routing_problems, routing_status
from meridian.sync.stall import newly_stalled, pod_problems
from meridian.sync.status import build_status, same_status
from meridian.sync.world import ChildKey, World
from meridian.timestamps import iso

RESIDENCY_RECHECK_SECONDS = 300.0  # status.residency.lastChecked is refreshed at least this often


def desired_total(md: ModelDeployment) -> int:
    """The replica total placement gets: spec.replicas, or the autoscaler's last recommendation."""
    a = md.spec.autoscaling
    if not a.enabled:
        return md.spec.replicas
    recommended = md.status.autoscaling.recommended_replicas if md.status.autoscaling else None
    base = recommended if recommended is not None else md.spec.replicas
    return min(max(base, a.min_replicas), a.max_replicas)


def _key(obj: Mapping[str, Any]) -> ChildKey:
    return obj["kind"], obj["metadata"]["name"]


PROTECTED_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})


def sync(world: World) -> Decision:
    md = world.model
    protected = PROTECTED_NAMESPACES | ({world.settings.operator_namespace} - {""})
    if md.metadata.namespace in protected:
        return _refuse_namespace(md, world)
    regions = world.regions
    claims = world.claims
    untrusted = untrusted_regions(claims.conflicts())
    ns_tag = world.namespace_residency
    required = required_tags(md.spec.placement.residency, ns_tag)
    proof = prove(required, world.pods, claims, regions)
    names = {label_value(r.name): r.name for r in regions}  # region label value → Region
    by_name = {r.name: r for r in regions}
    deployments = [o for (kind, _), o in sorted(world.owned.items()) if kind == "Deployment" and _regional(o)]
    evicted = evictions(md, deployments, proof, world.pods, regions, untrusted, ns_tag, names)
    gone = {e.name for e in evicted if e.kind == "Deployment"}
    remaining = [d for d in deployments if d["metadata"]["name"] not in gone]
    unready = unready_nodes(regions)
    obs = observe(remaining, world.pods, names, unready, world.unreachable)
    notes, records = _eviction_reports(evicted, proof, required)

    problems: list[Problem] = []
    mismatch = namespace_mismatch(md, ns_tag)
    if mismatch:
        problems.append(Problem("NamespaceResidency", mismatch))
    observed = obs.for_planner(world.now, world.held, {names.get(r, r): n for r, n in world.promised.items()})
    if md.spec.paused:
        p = Plan(md.spec.replicas)
    else:
        p = plan(md.spec, regions, observed, desired_total(md), untrusted)
        problems += [*p.problems, *runtime_spec_problems(md), *routing_problems(md, world.unserved)]
        problems += karmada_problems(p, by_name, world.unserved)
        problems += [
            Problem("WakeQueryUnavailable", m)
            for m in wake_problems(md.spec.autoscaling, bool(world.settings.prometheus_url))
        ]
    applies: list[dict[str, Any]] = []
    prunes: list[Prune] = []
    # being deleted (garbage collection takes the children), or a retry of a failed write (this pass
    # only reports it): nothing to apply
    writing = not md.metadata.deletion_timestamp and world.apply_failure is None
    if not problems and not md.spec.paused and writing:
        kids = children(md, p, world.settings)
        # policies first: Karmada matches a new object to a policy once, and an object it saw before
        # its policy can be left waiting for good (its detector's waiting list is not re-read)
        desired = [*propagation_policies(md, p, by_name, kids, required), *kids]
        taken = [f"{k} {n} ({world.foreign[(k, n)]})" for k, n in map(_key, desired) if (k, n) in world.foreign]
        if taken:
            problems.append(
                Problem(
                    "NameConflict",
                    f"{', '.join(taken)} already exist{'s' if len(taken) == 1 else ''} and "
                    f"{'is' if len(taken) == 1 else 'are'} not controlled by this ModelDeployment; "
                    "Meridian leaves them untouched: rename or delete them, or rename the model",
                )
            )
        else:
            applies = [o for o in desired if not _in_sync(o, world.owned.get(_key(o)))]
            prunes = _prunes(world, desired, gone, names)
            notes += _apply_notes(applies, world.owned, p, prunes)
            records += _placement_records(applies, world.owned, required, names)
    if world.apply_failure is not None:
        f = world.apply_failure
        problems.insert(0, Problem("ApplyRejected" if f.permanent else "ApplyFailed", f"{f.object}: {f.message}"))
    failing = [*pod_problems(world.pods), *pending_problems(world.pods, unready)] if not problems else []
    stalled = [x for x in problems if x.reason != "ApplyFailed"] + failing
    if stalled and newly_stalled(md, stalled[0].reason):
        notes += [Note(x.reason, x.message, warning=True) for x in stalled]

    status = build_status(
        md,
        p,
        obs,
        now=iso(world.now),
        problems=stalled,
        residency_ok=(proof.compliant, proof.message),
        progress_problem=next((x for x in problems if x.reason == "ApplyFailed"), None),
    )
    status["residency"] = _residency_status(md, proof, world.now)
    routed = routing_status(md, world.owned)
    if routed is not None:
        status["routing"] = routed
    satisfied = all(c["status"] == "True" for c in status["conditions"] if c["type"] in ("Ready", "PlacementSatisfied"))
    held = None if p.stalled or md.spec.paused else p.held
    return Decision(
        evictions=tuple(evicted),
        applies=tuple(applies),
        prunes=tuple(prunes),
        # a status.routing left from a removed spec.routing is not "a field we did not set"
        status=None if same_status(status, md.status.wire()) and (routed or not md.status.routing) else status,
        notes=tuple(notes),
        records=tuple(records),
        problems=tuple(stalled),
        held=held,
        regions=frozenset({t.region for t in p.targets} | set(obs.regions)),
        satisfied=satisfied and not problems,
        wake_in=_wake_in(md, regions, observed, held or {}),
    )


def _wake_in(
    md: ModelDeployment, regions: Sequence[Region], observed: Observed, held: Mapping[str, Hold]
) -> float | None:
    """When the clock alone changes this model's plan: a failover wait or hold ends, or nodes that
    stopped being Ready have been down for unschedulableSeconds and stop counting as capacity."""
    if not md.spec.placement.failover.enabled:
        return None
    ends = [next_change(md.spec.placement.failover, observed, held), grace_ends_in(regions, md.spec, observed.now)]
    left = [t for t in ends if t is not None]
    return min(left) if left else None


def _refuse_namespace(md: ModelDeployment, world: World) -> Decision:
    """Nothing is written in kube-system or the operator's own namespace, not even an eviction."""
    problem = Problem(
        "ProtectedNamespace",
        f"Meridian writes nothing in namespace {md.metadata.namespace} (kube-system and its own namespace "
        "are off limits): create the ModelDeployment in an application namespace",
    )
    obs = observe([], [])
    status = build_status(md, Plan(md.spec.replicas), obs, now=iso(world.now), problems=[problem])
    notes = (Note(problem.reason, problem.message, warning=True),) if newly_stalled(md, problem.reason) else ()
    return Decision(
        status=None if same_status(status, md.status.wire()) else status,
        notes=notes,
        problems=(problem,),
        satisfied=False,
    )


def _in_sync(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    return live is not None and in_sync(dict(desired), dict(live))


def _prunes(
    world: World, desired: Sequence[Mapping[str, Any]], gone: set[str], names: Mapping[str, str]
) -> list[Prune]:
    """Owned children no longer planned. A Deployment whose region still has a replacement that is
    not yet ready (a renamed child, after an upgrade) stays until it is: surge first. What serves a
    region whose member clusters do not answer stays until they do."""
    wanted = {_key(o) for o in desired}
    replacing: dict[str, tuple[str, int]] = {}
    for o in desired:
        if o["kind"] == "Deployment" and _regional(o):
            replacing[region_of_child(o, names)] = (o["metadata"]["name"], int(o["spec"]["replicas"]))
    out = []
    for (kind, name), obj in sorted(world.owned.items()):
        if (kind, name) in wanted or (kind == "Deployment" and name in gone):
            continue
        if (obj.get("metadata") or {}).get("deletionTimestamp"):
            continue  # deleted already, held by a finalizer (Karmada's, on a PropagationPolicy)
        if region_of_child(obj, names) in world.unreachable:
            continue  # Karmada cannot delete anything there now; deleted and made again on return would race
        if kind == "Deployment" and _regional(obj):
            new = replacing.get(region_of_child(obj, names))
            if new is not None and _ready(world.owned.get(("Deployment", new[0]))) < new[1]:
                continue
        out.append(Prune(str(obj.get("apiVersion", "v1")), kind, name))
    return out


def _regional(obj: Mapping[str, Any]) -> bool:
    """A Deployment of the model's replicas in one region, not the endpoint picker's."""
    return REGION_LABEL in ((obj.get("metadata") or {}).get("labels") or {})


def _ready(obj: Mapping[str, Any] | None) -> int:
    return int(((obj or {}).get("status") or {}).get("readyReplicas") or 0)


def _apply_notes(
    applies: Sequence[Mapping[str, Any]], owned: Mapping[ChildKey, Mapping[str, Any]], p: Plan, prunes: Sequence[Prune]
) -> list[Note]:
    notes = []
    for obj in applies:
        if obj["kind"] != "Deployment":
            continue
        current = owned.get(_key(obj))
        name, after = obj["metadata"]["name"], obj["spec"]["replicas"]
        if current is None:
            notes.append(Note("Created", f"Deployment {name} with {after} replicas"))
        elif (before := (current.get("spec") or {}).get("replicas")) != after:
            notes.append(Note("Scaled", f"Deployment {name}: {before} → {after}"))
    for move in p.moves:
        if move.kind in ("Scale", "Evict"):  # Created/Scaled and the eviction notes already say it
            continue
        where = f"{move.from_region or 'new'} → {move.to_region or 'removed'}"
        notes.append(
            Note(move.kind, f"{move.count} replica(s) {where}: {move.reason}", warning=move.kind == "Failover")
        )
    notes += [Note("Pruned", f"{x.kind} {x.name} is no longer planned") for x in prunes]
    return notes


def _eviction_reports(
    evicted: Sequence[Eviction], proof: Proof, required: Sequence[str]
) -> tuple[list[Note], list[Record]]:
    notes: list[Note] = []
    records: list[Record] = []
    by_pod = {v.pod: v for v in proof.violations}
    for e in evicted:
        if e.kind == "Deployment":
            notes.append(
                Note("Evicted", f"Deployment {e.name} scaled to 0 and deleted: region {e.region} {e.reason}", True)
            )
        else:
            v = by_pod[e.name]
            notes.append(Note("ResidencyViolation", f"pod {e.name} on node {v.node}: {v.why}; deleted", True))
            records.append(
                Record(
                    "residency.violation",
                    {
                        "pod": v.pod,
                        "node": v.node,
                        "region": v.region,
                        "jurisdictions": list(v.jurisdictions),
                        "required": list(required),
                        "reason": v.why,
                    },
                )
            )
        records.append(
            Record(
                "residency.eviction",
                {"kind": e.kind, "object": e.name, "region": e.region, "required": list(required), "reason": e.reason},
            )
        )
    return notes, records


def _placement_records(
    applies: Sequence[Mapping[str, Any]],
    owned: Mapping[ChildKey, Mapping[str, Any]],
    required: Sequence[str],
    names: Mapping[str, str],
) -> list[Record]:
    """One residency.placement line per Deployment whose replica count changes."""
    out = []
    for obj in applies:
        if obj["kind"] != "Deployment" or not _regional(obj):
            continue
        before = int(((owned.get(_key(obj)) or {}).get("spec") or {}).get("replicas") or 0)
        after = int(obj["spec"]["replicas"])
        if before != after:
            out.append(
                Record(
                    "residency.placement",
                    {
                        "object": obj["metadata"]["name"],
                        "region": region_of_child(obj, names),
                        "replicas": after,
                        "previousReplicas": before,
                        "required": list(required),
                    },
                )
            )
    return out


def _residency_status(md: ModelDeployment, proof: Proof, now: float) -> dict[str, Any]:
    """status.residency. lastChecked moves only when the proof changed or is getting old, so a pass
    with nothing changed writes nothing; lastViolation outlives the pod it names (the evidence)."""
    by_region: dict[str, tuple[int, tuple[str, ...]]] = {}
    for pl in proof.placements:
        if pl.ok and pl.region:
            n, _ = by_region.get(pl.region, (0, ()))
            by_region[pl.region] = (n + 1, pl.jurisdictions)
    violations = [{"pod": v.pod, "node": v.node, "region": v.region, "reason": v.why} for v in proof.violations]
    body: dict[str, Any] = {
        "required": list(proof.required),
        "compliant": proof.compliant,
        "regions": [{"name": r, "pods": n, "jurisdictions": list(j)} for r, (n, j) in sorted(by_region.items())],
        "violations": violations,
    }
    old = md.status.residency.wire() if md.status.residency else {}
    previous = old.get("lastViolation")
    if violations and (previous is None or {k: v for k, v in previous.items() if k != "time"} != violations[0]):
        body["lastViolation"] = {**violations[0], "time": iso(now)}
    elif previous is not None:
        body["lastViolation"] = previous
    last = old.pop("lastChecked", None)
    fresh = last is not None and now - _parse(last) < RESIDENCY_RECHECK_SECONDS
    body["lastChecked"] = last if fresh and old == body else iso(now)
    return body


def _parse(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
