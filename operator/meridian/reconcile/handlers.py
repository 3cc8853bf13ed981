"""Every kopf handler, cache listener and periodic job, registered in one place; each delegates at once.

kopf watches ModelDeployments and hands every event to one handler, which reconciles a model when
its spec, labels or annotations changed (a status write does not). kopf runs no change handler and
no timer of ours, so it never writes to a ModelDeployment: no finalizer, no bookkeeping annotation.
Everything else a reconcile reads comes from the watch caches (`Caches`), whose listeners requeue
the models a change can affect. Requeues coalesce, and reconciles run a bounded number at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping
from typing import Any

import kopf
from kubernetes_asyncio.client.exceptions import ApiException

from meridian import GROUP, VERSION
from meridian.api.region import Region, RegionObservedStatus
from meridian.config import Settings
from meridian.log import get as get_logger
from meridian.placement.plan import Hold
from meridian.reconcile import legacy, periodic
from meridian.reconcile.autoscaler import Autoscalers, autoscale_tick
from meridian.reconcile.caches import Caches, Listeners
from meridian.reconcile.informer import CacheUnavailable, Key
from meridian.reconcile.kopfsettings import configure_kopf
from meridian.reconcile.kube import Kube, retry_after
from meridian.reconcile.metrics import RECONCILE_SECONDS, RECONCILES
from meridian.reconcile.projections import Packed, model_of_pod
from meridian.reconcile.reconciler import reconcile
from meridian.reconcile.regions import RegionMemory, refresh_regions
from meridian.reconcile.runtime_probe import probe_runtime
from meridian.render.names import label_value

ModelKey = tuple[str, str]
log = get_logger("meridian.handlers")


class State:
    """Per-process operator state, injected through kopf's memo."""

    def __init__(self, kube: Kube, settings: Settings, priority: int = 0) -> None:
        self.kube = kube
        self.settings = settings
        self.priority = priority  # this replica's kopf peering priority
        self.caches = Caches(kube, settings.namespaces, listeners(self), peering=settings.peering)
        self.locks: dict[ModelKey, asyncio.Lock] = {}
        self.pending: dict[ModelKey, tuple[float, asyncio.Task[None]]] = {}  # when each requeue is due
        self.models: dict[ModelKey, Mapping[str, Any]] = {}  # the latest body kopf saw of each model
        self.by_label: dict[tuple[str, str], ModelKey] = {}  # (namespace, model-deployment label) → model
        self.reconciled: dict[ModelKey, tuple[Any, ...]] = {}  # what of each model its last reconcile saw
        self.jobs: list[asyncio.Task[None]] = []
        self.inventory_task: asyncio.Task[None] | None = None  # refreshes Region capacity when due
        self.inventory_due: float | None = None  # loop time of the next refresh
        self.inventory_wake = asyncio.Event()  # an earlier refresh was asked for
        self.region_memory = RegionMemory()
        self.respecified: set[str] = set()  # Regions whose spec changed since the last capacity refresh
        self.unsatisfied: set[ModelKey] = set()
        self.by_region: dict[str, set[ModelKey]] = {}
        # which regions each model could use (None: any not excluded); a region's capacity matters to them
        self.candidates: dict[ModelKey, tuple[frozenset[str] | None, frozenset[str]]] = {}
        # the planner's failover memory per model; losing it on restart costs one early retry
        self.held: dict[ModelKey, Mapping[str, Hold]] = {}
        # namespace → when (UTC, RFC 3339) a write there met NamespaceLifecycle: its models created
        # before then go with it, and reconciling them as their children are deleted creates nothing
        self.terminating: dict[str, str] = {}
        self.autoscalers = Autoscalers(prometheus_url=settings.prometheus_url)
        # bounded concurrency: a Region change that requeues every model must not open a request storm
        self.slots = asyncio.Semaphore(max(1, settings.max_concurrent_reconciles))

    def lock(self, key: ModelKey) -> asyncio.Lock:
        return self.locks.setdefault(key, asyncio.Lock())

    def active(self, namespace: str) -> bool:
        """False while this replica stands by under kopf peering: it then writes nothing."""
        return self.caches.active(namespace, self.priority, time.time())

    def seen(self, body: Mapping[str, Any]) -> None:
        """Remember the model as last seen, less its managedFields (often the larger part)."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        self.models[key] = {**body, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
        self.by_label[(key[0], label_value(key[1]))] = key

    def pods_of(self, key: ModelKey) -> list[dict[str, Any]]:
        return self.caches.pods_of(key[0], label_value(key[1]))

    def forget(self, key: ModelKey) -> None:
        """A deleted model leaves nothing behind in the operator's memory."""
        self.models.pop(key, None)
        self.reconciled.pop(key, None)
        self.by_label.pop((key[0], label_value(key[1])), None)
        self.unsatisfied.discard(key)
        for keys in self.by_region.values():
            keys.discard(key)
        self.candidates.pop(key, None)
        self.held.pop(key, None)
        self.autoscalers.forget(key)
        if self.terminating.get(key[0]) and not any(k[0] == key[0] for k in self.models):
            del self.terminating[key[0]]
        lock = self.locks.get(key)
        if lock is not None and not lock.locked():
            del self.locks[key]


def state(memo: kopf.Memo) -> State:
    st: State = memo["meridian"]
    return st


def fingerprint(body: Mapping[str, Any]) -> tuple[Any, ...]:
    """What of a model its reconcile depends on, status aside: the spec (by generation), labels,
    annotations and whether it is being deleted. Our own status writes change none of it."""
    meta = body.get("metadata") or {}
    return (
        meta.get("generation"),
        json.dumps(meta.get("labels") or {}, sort_keys=True),
        json.dumps(meta.get("annotations") or {}, sort_keys=True),
        bool(meta.get("deletionTimestamp")),
    )


def could_use(st: State, key: tuple[str, str], region: str) -> bool:
    allowed, excluded = st.candidates.get(key, (None, frozenset()))
    return region not in excluded and (allowed is None or region in allowed)


async def reconcile_now(st: State, body: Any) -> None:
    key = (body["metadata"]["namespace"], body["metadata"]["name"])
    st.seen(body)
    st.reconciled[key] = fingerprint(body)
    placement = (body.get("spec") or {}).get("placement") or {}
    allow = frozenset(r.get("name", "") for r in placement.get("regions") or []) or None
    st.candidates[key] = (allow, frozenset(placement.get("excludeRegions") or []))
    async with st.lock(key), st.slots:
        since = st.terminating.get(key[0])
        going = since is not None and str(body["metadata"].get("creationTimestamp") or "") < since
        with RECONCILE_SECONDS.time():
            try:
                regions = st.region_memory.planning(st.caches.region_list())
                outcome = await reconcile(
                    st.kube, st.caches, regions, body, st.settings, st.held.get(key), evict_only=going
                )
            except Exception:
                RECONCILES.labels("error").inc()
                raise
        if going:  # its namespace is being deleted, the model with it: evictions only
            RECONCILES.labels("namespace_terminating").inc()
            return
        RECONCILES.labels("ok").inc()
    if outcome.namespace_going:
        st.terminating[key[0]] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return
    if outcome.held is not None:
        st.held[key] = outcome.held
    if outcome.satisfied:
        st.unsatisfied.discard(key)
    else:
        st.unsatisfied.add(key)
    # a failover wait or hold ends with no event to say so: look again the moment it does, else (an
    # unsatisfied model) once the longest wait could have passed
    wake_in = outcome.decision.wake_in if outcome.decision else None
    if wake_in is not None:
        requeue(st, *key, delay=wake_in + 0.05)
    elif not outcome.satisfied:
        failover = ((body.get("spec") or {}).get("placement") or {}).get("failover") or {}
        requeue(st, *key, delay=float(failover.get("unschedulableSeconds", 120)) + 1.0)
    for region, keys in st.by_region.items():
        if region not in outcome.regions:
            keys.discard(key)
    for region in outcome.regions:
        st.by_region.setdefault(region, set()).add(key)


def requeue(st: State, namespace: str, name: str, delay: float = 0.5) -> None:
    """Coalesce bursts of events into one reconcile of the model: the earliest requeue wins."""
    key = (namespace, name)
    due = asyncio.get_running_loop().time() + delay
    current = st.pending.get(key)
    if current is not None:
        if current[0] <= due:
            return
        current[1].cancel()
    st.pending[key] = (due, asyncio.create_task(_later(st, key, delay)))


async def _later(st: State, key: tuple[str, str], delay: float) -> None:
    await asyncio.sleep(delay)
    st.pending.pop(key, None)
    body = st.models.get(key)
    if body is None:  # deleted meanwhile
        return
    if not st.active(key[0]):  # standing by: look again later, in memory only
        requeue(st, *key, delay=5.0)
        return
    try:
        await reconcile_now(st, body)
    except Exception as e:  # never let one object take the operator down; retry with backoff
        retry_later(st, key, e, min(max(delay, 0.5) * 2, 10.0))


def retry_later(st: State, key: tuple[str, str], error: BaseException, backoff: float) -> None:
    """Requeue a failed reconcile after the API server's Retry-After, else after `backoff`."""
    wait = retry_after(error) or backoff
    log.warning("reconcile failed; retrying", namespace=key[0], name=key[1], error=str(error)[:300], retry_in=wait)
    requeue(st, *key, delay=wait)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config: Settings = memo.get("config") or Settings()
    configure_kopf(settings, config)
    st = State(await Kube.connect(), config, priority=settings.peering.priority)
    memo["meridian"] = st
    st.caches.start()
    try:  # nothing is planned before the caches hold their first lists
        await st.caches.wait_synced()
    except CacheUnavailable as e:
        raise kopf.PermanentError(str(e)) from e
    log.info("caches synced", **{i.kind: len(i.store) for i in st.caches.informers})
    st.jobs = [
        asyncio.create_task(periodic.run(job, lambda: st.models, lambda key: st.active(key[0])), name=job.name)
        for job in jobs(st)
    ]


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    st = state(memo)
    tasks = [*st.jobs, *([st.inventory_task] if st.inventory_task else [])]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await st.caches.stop()
    await st.autoscalers.close()
    await st.kube.close()


@kopf.on.event(GROUP, VERSION, "modeldeployments")
async def modeldeployment_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    """Every event of a model kopf delivers (none while this replica stands by): remember the body,
    and reconcile when something other than its status changed, or when it is new to this process."""
    st = state(memo)
    body = event["object"]
    key = (body["metadata"]["namespace"], body["metadata"]["name"])
    if event["type"] == "DELETED":
        st.forget(key)
        return
    st.seen(body)
    await remove_leftovers(st, key, body)
    if st.reconciled.get(key) == fingerprint(body):
        return
    try:
        await reconcile_now(st, body)
    except Exception as e:  # retried by our own backoff, which honours Retry-After
        retry_later(st, key, e, 1.0)


async def remove_leftovers(st: State, key: ModelKey, body: Mapping[str, Any]) -> None:
    ops = legacy.cleanup(body)
    if ops is None:
        return
    try:
        await st.kube.patch_json(f"{GROUP}/{VERSION}", "ModelDeployment", key[0], key[1], ops)
        log.info("removed an earlier version's finalizer and annotations", namespace=key[0], name=key[1])
    except ApiException as e:  # changed meanwhile (the test failed) or gone: the next event tries again
        log.info("leftovers not removed yet", namespace=key[0], name=key[1], status=e.status)


def jobs(st: State) -> list[periodic.Job]:
    def autoscaled(body: Mapping[str, Any]) -> bool:
        return bool(((body.get("spec") or {}).get("autoscaling") or {}).get("enabled"))

    async def autoscale(key: ModelKey, body: Mapping[str, Any]) -> None:
        """Evaluate the autoscaling metric; a changed total is placed by an immediate reconcile."""
        try:
            changed = await autoscale_tick(st.kube, body, st.autoscalers, st.pods_of(key))
        except Exception as e:  # the next tick tries again; serving continues at the current total
            log.warning("autoscaling evaluation failed", namespace=key[0], name=key[1], error=str(e))
            return
        if changed:
            requeue(st, *key, delay=0.1)

    async def runtime_probe(key: ModelKey, body: Mapping[str, Any]) -> None:
        """Triton's own view of the model (versions, readiness) where a ready pod is reachable."""
        try:
            await probe_runtime(st.kube, body, st.pods_of(key))
        except Exception as e:  # a probe must never disturb reconciling
            log.info("runtime probe skipped", namespace=key[0], name=key[1], error=str(e))

    async def resync(key: ModelKey, body: Mapping[str, Any]) -> None:
        """A slow level-triggered safety net: whatever event was missed, the model is planned again."""
        requeue(st, *key, delay=0.1)

    return [
        periodic.Job("autoscale", st.settings.autoscale_interval_seconds, autoscale, wanted=autoscaled),
        periodic.Job("runtime probe", 30.0, runtime_probe, initial_delay=10.0),
        periodic.Job("resync", 300.0, resync, initial_delay=300.0),
    ]


def listeners(st: State) -> Listeners:
    """The cache changes that can matter to a model, each turned into a requeue of the models it affects."""

    def child(key: Key, old: Packed | None, new: Packed | None) -> None:
        kind, name, _ = (new or old or Packed(("", "", ""), b"")).controller
        if kind == "ModelDeployment" and key[0]:
            requeue(st, key[0], name)

    def pod(key: Key, old: Any, new: Any) -> None:
        owner = st.by_label.get(model_of_pod(new or old) or ("", ""))
        if owner is not None:
            requeue(st, *owner)

    def node(key: Key, old: Any, new: Any) -> None:
        """A node relabelled (or gone) can move the pods on it out of their Region: judge their models."""
        if old is not None and new is not None and old["metadata"]["labels"] == new["metadata"]["labels"]:
            return
        for cached in st.caches.all_pods():
            if cached["spec"]["nodeName"] == key[1]:
                pod(("", ""), None, cached)

    def namespace(key: Key, old: Any, new: Any) -> None:
        """A namespace gaining or changing its residency label: its models are judged again at once."""
        for model in sorted(k for k in st.models if k[0] == key[1]):
            requeue(st, *model, delay=0.1)

    def served(kind: str) -> None:
        """The Gateway API or Inference Extension CRDs arrived: models asking for routing go on."""
        for key, body in sorted(st.models.items()):
            if (body.get("spec") or {}).get("routing"):
                requeue(st, *key, delay=0.1)

    return Listeners(
        child=child,
        served=served,
        pod=pod,
        node=node,
        region=lambda key, old, new: region_changed(st, key[1], old, new),
        namespace=namespace,
        capacity=lambda: requeue_inventory(st),
    )


def requeue_inventory(st: State, delay: float = 0.3) -> None:
    """Coalesce node and pod churn into one refresh of every Region's capacity: the earliest wins."""
    due = asyncio.get_running_loop().time() + delay
    if st.inventory_due is not None and st.inventory_due <= due:
        return
    st.inventory_due = due
    if st.inventory_task is None or st.inventory_task.done():
        st.inventory_task = asyncio.create_task(_inventory_loop(st), name="region capacity")
    else:
        st.inventory_wake.set()


async def _inventory_loop(st: State) -> None:
    """Refresh whenever one is due, until none is; a refresh already running is never cut short."""
    loop = asyncio.get_running_loop()
    while st.inventory_due is not None:
        wait = st.inventory_due - loop.time()
        if wait > 0:
            st.inventory_wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(st.inventory_wake.wait(), wait)
            continue
        st.inventory_due = None
        await _refresh_inventory(st)


async def _refresh_inventory(st: State) -> None:
    caches = st.caches
    if not st.active(""):  # standing by: Region status is the active replica's to write
        requeue_inventory(st, delay=5.0)
        return
    # what the planner has used so far: the last observation, else the status as stored
    before = {r.name: st.region_memory.observed.get(r.name, r.status) for r in caches.region_list()}
    try:
        await caches.wait_synced()  # Regions counted before their nodes are listed would say "no nodes"
        refresh = await refresh_regions(
            st.kube,
            caches.region_list(),
            caches.all_nodes(),
            caches.requested,
            st.region_memory,
            caches.claims(),
        )
    except Exception as e:
        log.warning("region capacity refresh failed; retrying", error=str(e))
        requeue_inventory(st, delay=retry_after(e) or 5.0)
        return
    respecified, st.respecified = st.respecified, set()
    after = st.region_memory.observed
    for name in sorted(set(before) | set(after) | respecified):
        capacity_changed(st, name, before.get(name), after.get(name), name in respecified)
    if refresh.due_in is not None:  # GPU counts held back from a Region's status: write them then
        requeue_inventory(st, delay=refresh.due_in)


def _free(status: RegionObservedStatus | None) -> int:
    return status.free_gpus if status else 0


def _trust(status: RegionObservedStatus | None) -> tuple[tuple[str, str, str], ...]:
    """The Region's conditions (a node shared with another Region makes it untrusted)."""
    return tuple((c.type, c.status, c.reason) for c in status.conditions) if status else ()


def _shape(status: RegionObservedStatus | None) -> tuple[Any, ...]:
    """A region gaining or losing nodes, not merely GPUs in use."""
    return (status.nodes, status.ready_nodes, status.total_gpus) if status else ()


def region_changed(st: State, name: str, old: Region | None, new: Region | None) -> None:
    """A Region created, deleted or re-specified (jurisdictions, selector, cordon): its capacity is
    observed again, and then the models it can affect are planned again. Status changes are our
    own writes: the planner already had that capacity from the refresh that wrote it."""
    if (old.spec if old else None) != (new.spec if new else None):
        st.respecified.add(name)
        requeue_inventory(st)


def capacity_changed(
    st: State, name: str, old: RegionObservedStatus | None, new: RegionObservedStatus | None, respecified: bool
) -> None:
    """A Region's spec matters to the models that run there or could; its capacity to those, and,
    when GPUs are freed, to the models not yet fully placed. GPUs being taken (every pod placed
    while a fleet converges) wakes no one else: a thousand unready models re-planned at each pod
    placed is what made a large convergence slow."""
    # a region gaining or losing nodes matters to every model that could use it, even one fully
    # served elsewhere for now: capacity returning must bring it back. A spec change (jurisdictions,
    # selector, cordon) likewise; a model that excludes the region, or whose allow list leaves it
    # out, is not touched by it
    reshaped = respecified or _shape(old) != _shape(new)
    if not (reshaped or _trust(old) != _trust(new) or _free(new) > _free(old)):
        return  # only GPUs taken
    usable = {key for key in st.models if could_use(st, key, name)} if reshaped else set()
    affected = st.unsatisfied | st.by_region.get(name, set()) | usable
    for ns, md in sorted(affected):
        requeue(st, ns, md, delay=0.05)
