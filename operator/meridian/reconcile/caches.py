"""The operator's view of the cluster: one watch per kind, read by every reconcile.

Regions, Nodes, Namespaces, the kinds of children and pods each have one Informer, and under
kopf peering so has the peering object. GPUs taken per node are kept incrementally from pod events,
so Region capacity never needs a cluster-wide list.
Behind Karmada, each member cluster a Region names also has a Node and a Pod informer, through
Karmada's cluster proxy; its nodes are known as `<cluster>/<node>` and its pods' nodeName with them,
so claims, capacity and the residency proof read them as they read this cluster's.
Nothing is planned before every cache holds its first list (`wait_synced`): a model reconciled
before the Regions are known would be planned as if there were none. A member gets a bounded
wait, so one member that does not answer does not stop the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any, TypeVar

from meridian import API_VERSION
from meridian.api.region import Region
from meridian.log import get as get_logger
from meridian.placement.claims import NodeClaims, member_node, node_claims
from meridian.placement.inventory import gpu_requests
from meridian.placement.promised import Triple, promised_to_others, waiting_gpus
from meridian.reconcile import projections
from meridian.reconcile.informer import CacheUnavailable, Change, Informer, Key
from meridian.reconcile.kube import PLURALS, Kube
from meridian.reconcile.peering import PEERING_API, is_active, peering_status
from meridian.render.labels import MANAGED_BY, MD_LABEL, REGION_LABEL
from meridian.render.reach import PROPAGATION_API
from meridian.render.routing import POOL_API, ROUTE_API
from meridian.sync.pending import unschedulable_condition
from meridian.sync.residency import NAMESPACE_RESIDENCY_LABEL

CHILD_KINDS = (
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("policy/v1", "PodDisruptionBudget"),
    ("v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    (POOL_API, "InferencePool"),
    (ROUTE_API, "HTTPRoute"),
    (PROPAGATION_API, "PropagationPolicy"),
)
# from CRDs a cluster may not have: Gateway API, Inference Extension, Karmada
OPTIONAL_KINDS = frozenset({"InferencePool", "HTTPRoute", "PropagationPolicy"})
MEMBER_SYNC_SECONDS = 15.0  # how long a first list of a member cluster's nodes and pods is waited for
MANAGED_SELECTOR = f"{MANAGED_BY}=meridian"
CRD_API = "apiextensions.k8s.io/v1"
T = TypeVar("T")
log = get_logger("meridian.caches")


def is_pattern(namespace: str) -> bool:
    return any(c in namespace for c in "!*?,")


def matches(namespace: str, pattern: str) -> bool:
    """kopf's namespace patterns: comma-separated globs, `!glob` excludes, a leading exclusion implies
    `*` before it, and a later inclusion only takes back an exclusion ("app-*, !*-pr-*, *-pr-1")."""
    globs = [g.strip() for g in pattern.split(",") if g.strip()]
    included: bool | None = True if globs and globs[0].startswith("!") else None
    excluded = False
    for glob in globs:
        if glob.startswith("!"):
            excluded = excluded or (bool(included) and fnmatchcase(namespace, glob[1:]))
        elif included is None:
            included = fnmatchcase(namespace, glob)
        elif excluded and fnmatchcase(namespace, glob):
            excluded = False
    return bool(included) and not excluded


def watch_plan(patterns: Sequence[str]) -> tuple[tuple[str, ...], Callable[[str], bool]]:
    """Where to watch namespaced kinds for these --namespace values: each named namespace on its own,
    or (with any pattern, or none at all) the whole cluster, keeping only the namespaces that match."""
    if not patterns:
        return ("",), lambda ns: True
    if not any(is_pattern(p) for p in patterns):
        return tuple(patterns), lambda ns: True
    return ("",), lambda ns: any(matches(ns, p) for p in patterns)


def _only(
    watched: Callable[[str], bool], project: Callable[[Mapping[str, Any]], T | None]
) -> Callable[[Mapping[str, Any]], T | None]:
    def keep(obj: Mapping[str, Any]) -> T | None:
        return project(obj) if watched(str((obj.get("metadata") or {}).get("namespace") or "")) else None

    return keep


@dataclass
class Listeners:
    """What the handlers want to hear about; each is called after the cache holds the change."""

    child: Change | None = None
    pod: Change | None = None
    node: Change | None = None
    region: Change | None = None
    namespace: Change | None = None
    capacity: Callable[[], None] | None = None
    served: Callable[[str], None] | None = None  # an optional child kind's CRD was installed


def _member_node(cluster: str) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    def project(obj: Mapping[str, Any]) -> dict[str, Any]:
        kept = projections.node(obj)
        kept["metadata"]["name"] = member_node(cluster, kept["metadata"]["name"])
        return kept

    return project


def _member_pod(cluster: str, watched: Callable[[str], bool]) -> Callable[[Mapping[str, Any]], dict[str, Any] | None]:
    def project(obj: Mapping[str, Any]) -> dict[str, Any] | None:
        kept = _only(watched, projections.pod)(obj)
        if kept is not None:
            kept[projections.CLUSTER] = cluster
            if node := kept["spec"]["nodeName"]:
                kept["spec"]["nodeName"] = member_node(cluster, node)
        return kept

    return project


class Member:
    """A Karmada member cluster's nodes and pods, read through Karmada's cluster proxy."""

    def __init__(self, caches: Caches, kube: Kube, name: str, namespaces: tuple[str, ...]) -> None:
        self.name = name
        self.caches = caches
        self.unreachable_since: str | None = None  # when its API server stopped answering, RFC 3339
        self.nodes: Informer[dict[str, Any]] = Informer(
            kube,
            "v1",
            "Node",
            project=_member_node(name),
            on_change=lambda key, old, new: caches._node_changed(("", member_node(name, key[1])), old, new),
            on_reach=self._reach,
        )
        self.pods: Informer[dict[str, Any]] = Informer(
            kube,
            "v1",
            "Pod",
            namespaces=namespaces,
            project=_member_pod(name, caches.watched),
            index_by=projections.model_of_pod,
            on_change=caches._pod_changed,
        )
        self.tasks = [asyncio.create_task(i.run(), name=f"cache {name} {i.kind}") for i in (self.nodes, self.pods)]
        self.deadline = asyncio.get_running_loop().time() + MEMBER_SYNC_SECONDS
        self.reported: set[str] = set()  # kinds whose refusal was logged

    def node_values(self) -> list[dict[str, Any]]:
        """Its nodes as last listed; while its API server does not answer, each not Ready since it
        stopped, as a cluster's node lifecycle controller would mark a node that stopped reporting:
        the failover hold (unschedulableSeconds) counts from then."""
        if self.unreachable_since is None:
            return list(self.nodes.values())
        down = [{"type": "Ready", "status": "Unknown", "lastTransitionTime": self.unreachable_since}]
        return [{**n, "status": {**n["status"], "conditions": down}} for n in self.nodes.values()]

    def pod_values(self, namespace: str, label: str) -> list[dict[str, Any]]:
        """A model's pods in this member as last listed; while its API server does not answer, each
        waits to be scheduled since it stopped: no one can say they still serve, and the failover
        hold counts from then, as for replicas whose nodes are gone."""
        pods = list(self.pods.by((namespace, label)).values())
        if self.unreachable_since is None:
            return pods
        lost = [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": f"0/0 nodes are available: member cluster {self.name} does not answer",
                "lastTransitionTime": self.unreachable_since,
            },
            {"type": "Ready", "status": "Unknown", "lastTransitionTime": self.unreachable_since},
        ]
        return [{**p, "status": {**p["status"], "phase": "Pending", "conditions": lost}} for p in pods]

    def _reach(self, ok: bool) -> None:
        if ok == (self.unreachable_since is None):
            return
        if ok:
            log.info("member cluster answers again", cluster=self.name)
            self.unreachable_since = None
        else:
            log.warning("member cluster does not answer; its nodes count as not Ready", cluster=self.name)
            self.unreachable_since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.caches.listeners.capacity is not None:
            self.caches.listeners.capacity()
        if self.caches.listeners.pod is not None:  # their models are judged again now
            for key, pod in list(self.pods.store.items()):
                self.caches.listeners.pod(key, pod, pod)

    async def wait_synced(self) -> None:
        """Until both hold their first list, or the member's first wait has run out."""
        left = self.deadline - asyncio.get_running_loop().time()
        if left > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(self.nodes.synced.wait(), self.pods.synced.wait()), left)
        for informer in (self.nodes, self.pods):
            if informer.failure is not None and informer.kind not in self.reported:
                self.reported.add(informer.kind)
                log.error("member cluster unreadable", cluster=self.name, error=str(informer.failure))

    def forget(self) -> None:
        """Cancel the watches and forget what they held, as if every node and pod were deleted."""
        for task in self.tasks:
            task.cancel()
        for informer in (self.pods, self.nodes):
            for namespace in informer.namespaces:
                informer._replace(namespace, [])


def _region(obj: Mapping[str, Any]) -> Region:
    return Region.model_validate(obj)


def _established(obj: Mapping[str, Any]) -> str | None:
    """A CRD's name once the API server serves its kind, else nothing."""
    conditions = (obj.get("status") or {}).get("conditions") or []
    ok = any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)
    return str(obj["metadata"]["name"]) if ok else None


def _residency_label(obj: Mapping[str, Any]) -> str:
    return str(((obj.get("metadata") or {}).get("labels") or {}).get(NAMESPACE_RESIDENCY_LABEL, ""))


class Caches:
    """Watch-fed stores and the GPUs requested per node, derived from them."""

    def __init__(
        self, kube: Kube, patterns: Sequence[str] = (), listeners: Listeners | None = None, peering: str = ""
    ) -> None:
        """`patterns`: the operator's --namespace values (names or kopf patterns); none is all.
        `peering`: kopf's peering name, "" when standalone."""
        namespaces, watched = watch_plan(patterns)
        self.kube, self.namespaces_watched, self.watched = kube, namespaces, watched
        self.listeners = listeners or Listeners()
        heard = self.listeners
        self.members: dict[str, Member] = {}  # Karmada member clusters some Region names
        self.requested: dict[str, int] = {}  # node → GPUs held by scheduled, unfinished pods
        self.labels: dict[str, Mapping[str, str]] = {}  # node → its labels
        self.labels_version = 0  # bumped whenever a node's labels change, or a node comes or goes
        self._claims: tuple[tuple[Any, ...], NodeClaims] | None = None
        # GPUs promised to replicas on their way to a node (placement/promised), kept per event
        # regional Deployments' (replicas, GPUs each, since when they ask for those: monotonic)
        self.asked: dict[Triple, dict[Key, tuple[int, int, float]]] = {}
        self._asked_by: dict[Key, Triple] = {}
        self.settled: Counter[Triple] = Counter()  # Meridian pods on a node, or refused one
        self._promised: dict[Triple, tuple[int, float]] = {}  # GPUs still on their way, and since when
        self.regions: Informer[Region] = Informer(
            kube, API_VERSION, "Region", project=_region, on_change=self._region_changed
        )
        self.nodes: Informer[dict[str, Any]] = Informer(
            kube, "v1", "Node", project=projections.node, on_change=self._node_changed
        )
        self.namespaces: Informer[str] = Informer(
            kube, "v1", "Namespace", project=_residency_label, on_change=heard.namespace
        )
        self.pods: Informer[dict[str, Any]] = Informer(
            kube,
            "v1",
            "Pod",
            namespaces=namespaces,
            project=_only(watched, projections.pod),
            index_by=projections.model_of_pod,
            on_change=self._pod_changed,
        )
        self.children: dict[str, Informer[projections.Packed]] = {
            kind: Informer(
                kube,
                api_version,
                kind,
                namespaces=namespaces,
                label_selector=MANAGED_SELECTOR,
                project=_only(watched, projections.packed),
                index_by=lambda child: child.controller[2] or None,
                on_change=self._deployment_changed if kind == "Deployment" else heard.child,
                optional=kind in OPTIONAL_KINDS,
                on_served=heard.served,
            )
            for api_version, kind in CHILD_KINDS
        }
        # established CRDs, by name: an optional child kind's CRD arriving wakes its informer
        self.crds: Informer[str] = Informer(
            kube,
            CRD_API,
            "CustomResourceDefinition",
            project=_established,
            on_change=self._crd_changed,
        )
        # kopf keeps one ClusterKopfPeering when it serves the whole cluster, else a KopfPeering per namespace
        self.peering_name = peering
        self.peering_clusterwide = not patterns
        self.peering: Informer[dict[str, Any]] | None = None
        if peering:
            self.peering = Informer(
                kube,
                PEERING_API,
                "ClusterKopfPeering" if self.peering_clusterwide else "KopfPeering",
                namespaces=("",) if self.peering_clusterwide else namespaces,
                project=_only(watched, peering_status(peering)),
            )
        self.tasks: list[asyncio.Task[None]] = []

    @property
    def informers(self) -> list[Informer[Any]]:
        out: list[Informer[Any]] = [
            self.regions,
            self.nodes,
            self.namespaces,
            self.pods,
            self.crds,
            *self.children.values(),
        ]
        return out + ([self.peering] if self.peering is not None else [])

    def start(self) -> None:
        self.tasks = [asyncio.create_task(i.run(), name=f"cache {i.kind}") for i in self.informers]

    async def wait_synced(self) -> None:
        """Return once every cache holds its first list; raise CacheUnavailable naming what is refused."""
        await asyncio.gather(*(i.synced.wait() for i in self.informers))
        failures = [str(i.failure) for i in self.informers if i.failure is not None]
        if failures:
            raise CacheUnavailable("; ".join(failures))
        await asyncio.gather(*(m.wait_synced() for m in list(self.members.values())))

    @property
    def synced(self) -> bool:
        return all(i.synced.is_set() and i.failure is None for i in self.informers)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for member in self.members.values():
            for task in member.tasks:
                task.cancel()
        await asyncio.gather(*self.tasks, *(t for m in self.members.values() for t in m.tasks), return_exceptions=True)

    # reads a reconcile makes

    def owned(self, namespace: str, uid: str) -> dict[tuple[str, str], dict[str, Any]]:
        """Children whose controller is the object with this uid, by (kind, name)."""
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for kind, informer in self.children.items():
            for (ns, name), child in informer.by(uid).items():
                if ns == namespace:
                    out[(kind, name)] = child.obj
        return out

    def unserved(self) -> frozenset[str]:
        """Child kinds the API server does not serve now (their CRDs are not installed)."""
        return frozenset(kind for kind, informer in self.children.items() if not informer.served)

    def pods_of(self, namespace: str, label: str) -> list[dict[str, Any]]:
        """A model's pods, in this cluster and every member, found by its model-deployment label value."""
        out = list(self.pods.by((namespace, label)).values())
        for member in self.members.values():
            out += member.pod_values(namespace, label)
        return out

    def unreachable(self) -> frozenset[str]:
        """Regions reached as member clusters none of which answers now."""
        down = {name for name, m in self.members.items() if m.unreachable_since is not None}
        return frozenset(r.name for r in self.regions.values() if r.spec.clusters and set(r.spec.clusters) <= down)

    def all_pods(self) -> list[dict[str, Any]]:
        return [*self.pods.values(), *(p for m in self.members.values() for p in m.pods.values())]

    def all_nodes(self) -> list[dict[str, Any]]:
        return [*self.nodes.values(), *(n for m in self.members.values() for n in m.node_values())]

    def region_list(self) -> tuple[Region, ...]:
        return tuple(sorted(self.regions.values(), key=lambda r: r.name))

    def claims(self) -> NodeClaims:
        """Which Regions select each node. Every reconcile reads it and it changes only with a
        selector or a node's labels, so it is kept until one of those does."""
        key = (self.labels_version, tuple((r.name, tuple(sorted(r.node_selector.items()))) for r in self.region_list()))
        if self._claims is None or self._claims[0] != key:
            self._claims = (key, node_claims(self.region_list(), self.labels.items()))
        return self._claims[1]

    def namespace_residency(self, namespace: str) -> str:
        return self.namespaces.get("", namespace) or ""

    def active(self, namespace: str, priority: int, now: float) -> bool:
        """Whether this replica, of this peering priority, may write for models in `namespace`."""
        if self.peering is None:
            return True
        if self.peering_clusterwide:
            status = self.peering.get("", self.peering_name)
        elif namespace:
            status = self.peering.get(namespace, self.peering_name)
        else:  # cluster-scoped work (Region status): the same priorities are in every namespace's object
            status = next(self.peering.values(), None)
        return is_active(status, priority, now)

    # derived state

    def _region_changed(self, key: Key, old: Region | None, new: Region | None) -> None:
        """Watch the member clusters the Regions name now, and stop watching those none names."""
        named = {c for r in self.regions.values() for c in r.spec.clusters or ()}
        for cluster in sorted(named - set(self.members)):
            self.members[cluster] = Member(self, self.kube.member(cluster), cluster, self.namespaces_watched)
        for cluster in sorted(set(self.members) - named):
            member = self.members.pop(cluster)
            member.forget()
            self.tasks += member.tasks  # cancelled; awaited by stop()
        if self.listeners.region is not None:
            self.listeners.region(key, old, new)

    def promised(self, namespace: str, label: str, now: float | None = None) -> dict[str, int]:
        """GPUs per region label value of every other model's replicas on their way to a node."""
        at = time.monotonic() if now is None else now
        return promised_to_others(self._promised, (namespace, label), at)

    def _repromise(self, triple: Triple) -> None:
        asked = self.asked.get(triple, {}).values()
        waiting = waiting_gpus(((r, g) for r, g, _ in asked), self.settled[triple])
        if waiting:
            self._promised[triple] = (waiting, max(since for *_, since in asked))
        else:
            self._promised.pop(triple, None)

    def expect(self, deployments: Sequence[Mapping[str, Any]]) -> None:
        """Deployments about to be applied count as promised now, not at their watch events:
        reconciles run side by side, and each must plan against the others' last decisions."""
        for obj in deployments:
            key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
            self._ask(key, obj, self._unask(key))

    def unexpect(self, deployments: Sequence[Mapping[str, Any]]) -> None:
        """Back to what the cache holds, for Deployments whose apply did not happen."""
        for obj in deployments:
            key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
            cached = self.children["Deployment"].get(*key)
            was = self._unask(key)
            if cached is not None:
                self._ask(key, cached.obj, was)

    def _ask(self, key: Key, obj: Mapping[str, Any], before: tuple[int, int, float] | None = None) -> None:
        """`before`: what the Deployment asked for until now; a change restarts its promise."""
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        if REGION_LABEL not in labels or MD_LABEL not in labels or meta.get("deletionTimestamp"):
            return  # a Deployment being deleted makes no more pods
        triple = (key[0], labels[MD_LABEL], labels[REGION_LABEL])
        spec = obj.get("spec") or {}
        replicas, gpus = int(spec.get("replicas", 1) or 0), gpu_requests(spec.get("template") or {})
        since = before[2] if before is not None and before[:2] == (replicas, gpus) else time.monotonic()
        self.asked.setdefault(triple, {})[key] = (replicas, gpus, since)
        self._asked_by[key] = triple
        self._repromise(triple)

    def _unask(self, key: Key) -> tuple[int, int, float] | None:
        """Forget what the Deployment asked for, and return it."""
        triple = self._asked_by.pop(key, None)
        if triple is None:
            return None
        asked = self.asked[triple]
        was = asked.pop(key, None)
        if not asked:
            del self.asked[triple]
        self._repromise(triple)
        return was

    def _deployment_changed(self, key: Key, old: Any, new: Any) -> None:
        was = self._unask(key)
        if new is not None:
            self._ask(key, new.obj, was)
        if self.listeners.child is not None:
            self.listeners.child(key, old, new)

    def _settle(self, pod: Mapping[str, Any] | None, delta: int) -> None:
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return
        if pod["status"].get("phase") in projections.TERMINAL:
            return
        labels = pod["metadata"].get("labels") or {}
        if MD_LABEL in labels and (pod["spec"]["nodeName"] or unschedulable_condition(pod) is not None):
            triple = (pod["metadata"]["namespace"], labels[MD_LABEL], labels.get(REGION_LABEL, ""))
            self.settled[triple] += delta
            if not self.settled[triple]:
                del self.settled[triple]
            self._repromise(triple)

    def _pod_changed(self, key: Key, old: Any, new: Any) -> None:
        self._settle(old, -1)
        self._settle(new, 1)
        before, after = projections.gpus_held(old), projections.gpus_held(new)
        if before != after:
            for node, delta in ((before[0], -before[1]), (after[0], after[1])):
                if node and delta:
                    left = self.requested.get(node, 0) + delta
                    if left:
                        self.requested[node] = left
                    else:
                        self.requested.pop(node, None)
            if self.listeners.capacity is not None:
                self.listeners.capacity()
        if self.listeners.pod is not None and projections.model_of_pod(new or old or {}) is not None:
            self.listeners.pod(key, old, new)

    def _crd_changed(self, key: Key, old: str | None, new: str | None) -> None:
        if new is None or old is not None:
            return
        for api_version, kind in CHILD_KINDS:
            group = api_version.rpartition("/")[0]
            if kind in OPTIONAL_KINDS and new == f"{PLURALS[(api_version, kind)]}.{group}":
                self.children[kind].wake.set()

    def _node_changed(self, key: Key, old: Any, new: Any) -> None:
        labels = new["metadata"]["labels"] if new is not None else None
        if labels != self.labels.get(key[1]):
            self.labels_version += 1
        if labels is None:
            self.labels.pop(key[1], None)
        else:
            self.labels[key[1]] = labels
        if self.listeners.node is not None:
            self.listeners.node(key, old, new)
        if self.listeners.capacity is not None:
            self.listeners.capacity()
