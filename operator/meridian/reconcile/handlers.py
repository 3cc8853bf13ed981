"""Every kopf handler, registered in one place; each delegates at once to the reconciler.

ModelDeployments are reconciled on create, update and resume; events on their children, pods and
Regions requeue the owner, so status follows reality and drift is repaired.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import kopf

from meridian import GROUP, VERSION
from meridian.config import Settings
from meridian.log import get as get_logger
from meridian.placement.plan import Hold
from meridian.reconcile.autoscaler import Autoscalers, autoscale_tick
from meridian.reconcile.kopfsettings import configure_kopf
from meridian.reconcile.kube import Kube, retry_after
from meridian.reconcile.metrics import RECONCILE_SECONDS, RECONCILES
from meridian.reconcile.reconciler import reconcile
from meridian.reconcile.regions import refresh_regions
from meridian.reconcile.runtime_probe import probe_runtime
from meridian.render.labels import MANAGED_BY, MD_LABEL
from meridian.sync.residency import NAMESPACE_RESIDENCY_LABEL

MANAGED = {MANAGED_BY: "meridian"}
log = get_logger("meridian.handlers")


class State:
    """Per-process operator state, injected through kopf's memo."""

    def __init__(self, kube: Kube, settings: Settings) -> None:
        self.kube = kube
        self.settings = settings
        self.locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.pending: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.known: set[tuple[str, str]] = set()
        self.inventory_pending: asyncio.Task[None] | None = None
        self.orphans_reported: set[str] = set()
        self.region_specs: dict[str, Any] = {}
        self.region_shapes: dict[str, Any] = {}
        self.namespace_tags: dict[str, str] = {}  # namespace → its serving.meridian.dev/residency label
        self.unsatisfied: set[tuple[str, str]] = set()
        self.by_region: dict[str, set[tuple[str, str]]] = {}
        # which regions each model could use (None: any not excluded); a region's capacity matters to them
        self.candidates: dict[tuple[str, str], tuple[frozenset[str] | None, frozenset[str]]] = {}
        # the planner's failover memory per model; losing it on restart costs one early retry
        self.held: dict[tuple[str, str], Mapping[str, Hold]] = {}
        self.autoscalers = Autoscalers(prometheus_url=settings.prometheus_url)
        # bounded concurrency: a Region change that requeues every model must not open a request storm
        self.slots = asyncio.Semaphore(max(1, settings.max_concurrent_reconciles))

    def lock(self, key: tuple[str, str]) -> asyncio.Lock:
        return self.locks.setdefault(key, asyncio.Lock())

    def forget(self, key: tuple[str, str]) -> None:
        """A deleted model leaves nothing behind in the operator's memory."""
        self.known.discard(key)
        self.unsatisfied.discard(key)
        for keys in self.by_region.values():
            keys.discard(key)
        self.candidates.pop(key, None)
        self.held.pop(key, None)
        self.autoscalers.forget(key)
        lock = self.locks.get(key)
        if lock is not None and not lock.locked():
            del self.locks[key]


def state(memo: kopf.Memo) -> State:
    st: State = memo["meridian"]
    return st


def could_use(st: State, key: tuple[str, str], region: str) -> bool:
    allowed, excluded = st.candidates.get(key, (None, frozenset()))
    return region not in excluded and (allowed is None or region in allowed)


async def reconcile_now(st: State, body: Any) -> None:
    key = (body["metadata"]["namespace"], body["metadata"]["name"])
    st.known.add(key)
    placement = (body.get("spec") or {}).get("placement") or {}
    allow = frozenset(r.get("name", "") for r in placement.get("regions") or []) or None
    st.candidates[key] = (allow, frozenset(placement.get("excludeRegions") or []))
    async with st.lock(key), st.slots:
        with RECONCILE_SECONDS.time():
            try:
                outcome = await reconcile(st.kube, body, st.settings, st.held.get(key))
            except Exception:
                RECONCILES.labels("error").inc()
                raise
        RECONCILES.labels("ok").inc()
    if outcome.held is not None:
        st.held[key] = outcome.held
    if outcome.satisfied:
        st.unsatisfied.discard(key)
    else:
        st.unsatisfied.add(key)
    for region, keys in st.by_region.items():
        if region not in outcome.regions:
            keys.discard(key)
    for region in outcome.regions:
        st.by_region.setdefault(region, set()).add(key)


def requeue(st: State, namespace: str, name: str, delay: float = 0.5) -> None:
    """Coalesce bursts of child events into one reconcile of the owner."""
    key = (namespace, name)
    if key in st.pending:
        return
    st.pending[key] = asyncio.create_task(_later(st, key, delay))


async def _later(st: State, key: tuple[str, str], delay: float) -> None:
    await asyncio.sleep(delay)
    st.pending.pop(key, None)
    try:
        body = await st.kube.get(f"{GROUP}/{VERSION}", "ModelDeployment", *key)
        if body is None:
            st.forget(key)
            return
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
    memo["meridian"] = State(await Kube.connect(), config)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    await state(memo).autoscalers.close()
    await state(memo).kube.close()


@kopf.on.resume(GROUP, VERSION, "modeldeployments")
@kopf.on.create(GROUP, VERSION, "modeldeployments")
@kopf.on.update(GROUP, VERSION, "modeldeployments")
async def modeldeployment_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    st = state(memo)
    try:
        await reconcile_now(st, body)
    except Exception as e:  # retried by our own backoff, which honours Retry-After, not kopf's minute
        retry_later(st, (body.metadata.namespace or "", body.metadata.name or ""), e, 1.0)


def _autoscaled(spec: kopf.Spec, **_: Any) -> bool:
    return bool(spec.get("autoscaling", {}).get("enabled"))


@kopf.timer(GROUP, VERSION, "modeldeployments", interval=Settings().autoscale_interval_seconds, when=_autoscaled)
async def autoscale(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Evaluate the autoscaling metric; a changed total is placed by an immediate reconcile."""
    st = state(memo)
    try:
        changed = await autoscale_tick(st.kube, body, st.autoscalers)
    except Exception as e:  # the next tick tries again; serving continues at the current total
        log.warning(
            "autoscaling evaluation failed", namespace=body.metadata.namespace, name=body.metadata.name, error=str(e)
        )
        return
    if changed:
        requeue(st, body.metadata.namespace or "", body.metadata.name or "", delay=0.1)


@kopf.timer(GROUP, VERSION, "modeldeployments", interval=30.0, initial_delay=10.0)
async def runtime_probe(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Triton's own view of the model (versions, readiness) where a ready pod is reachable."""
    try:
        await probe_runtime(state(memo).kube, body)
    except Exception as e:  # a probe must never disturb reconciling
        log.info("runtime probe skipped", namespace=body.metadata.namespace, name=body.metadata.name, error=str(e))


@kopf.timer(GROUP, VERSION, "modeldeployments", interval=300.0, initial_delay=300.0)
async def resync(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A slow level-triggered safety net: whatever event was missed, the model is planned again."""
    requeue(state(memo), body.metadata.namespace or "", body.metadata.name or "", delay=0.1)


@kopf.on.event(GROUP, VERSION, "modeldeployments")
async def modeldeployment_seen(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    meta = event["object"]["metadata"]
    key = (meta["namespace"], meta["name"])
    if event["type"] == "DELETED":
        state(memo).forget(key)
    else:
        state(memo).known.add(key)


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
@kopf.on.event("", "v1", "services", labels=MANAGED)
@kopf.on.event("", "v1", "configmaps", labels=MANAGED)
@kopf.on.event("policy", "v1", "poddisruptionbudgets", labels=MANAGED)
@kopf.on.event("", "v1", "pods", labels=MANAGED)
async def child_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    refs = [r for r in body.metadata.get("ownerReferences") or [] if r.get("kind") == "ModelDeployment"]
    owner = refs[0].get("name") if refs else body.metadata.labels.get(MD_LABEL)  # pods: the label
    if owner and body.metadata.namespace:
        requeue(state(memo), body.metadata.namespace, owner)


def requeue_inventory(st: State, delay: float = 0.3) -> None:
    """Coalesce node and pod churn into one refresh of every Region's capacity."""
    if st.inventory_pending is None or st.inventory_pending.done():
        st.inventory_pending = asyncio.create_task(_inventory_later(st, delay))


async def _inventory_later(st: State, delay: float) -> None:
    await asyncio.sleep(delay)
    try:
        await refresh_regions(st.kube, st.orphans_reported)
    except Exception as e:
        log.warning("region capacity refresh failed; retrying", error=str(e))
        st.inventory_pending = None
        requeue_inventory(st, delay=5.0)


@kopf.on.event("", "v1", "namespaces")
async def namespace_changed(body: kopf.Body, memo: kopf.Memo, type: str | None, **_: Any) -> None:
    """A namespace gaining or changing its residency label: its models are judged again at once."""
    st = state(memo)
    ns = body.metadata.name or ""
    tag = "" if type == "DELETED" else (body.metadata.labels or {}).get(NAMESPACE_RESIDENCY_LABEL, "")
    if st.namespace_tags.get(ns, "") == tag:
        return
    st.namespace_tags[ns] = tag
    for key in sorted(k for k in st.known if k[0] == ns):
        requeue(st, *key, delay=0.1)


@kopf.on.event("", "v1", "nodes")
async def node_changed(memo: kopf.Memo, **_: Any) -> None:
    requeue_inventory(state(memo))


@kopf.on.event("", "v1", "pods", when=lambda body, **_: bool(body.get("spec", {}).get("nodeName")))
async def scheduled_pod_changed(memo: kopf.Memo, **_: Any) -> None:
    requeue_inventory(state(memo))


@kopf.on.event(GROUP, VERSION, "regions")
async def region_changed(body: kopf.Body, memo: kopf.Memo, type: str | None, **_: Any) -> None:
    """A Region's spec matters to the models that run there or could; its capacity to those, and to
    the models not yet fully placed."""
    st = state(memo)
    name = body.metadata.name or ""
    spec = None if type == "DELETED" else dict(body.spec)
    spec_changed = st.region_specs.get(name) != spec
    if spec is None:
        st.region_specs.pop(name, None)
    else:
        st.region_specs[name] = spec
    if spec_changed:
        requeue_inventory(st)
    # a region gaining or losing nodes (not merely GPUs in use) matters to every model that could use
    # it, even one fully served elsewhere for now: capacity returning must bring it back
    status = dict(body.get("status") or {})
    shape = (status.get("nodes"), status.get("readyNodes"), status.get("totalGpus"))
    shape_changed = st.region_shapes.get(name) != shape
    st.region_shapes[name] = shape
    # a spec change (jurisdictions, selector, cordon) matters to the models that run there or could;
    # a model that excludes the region, or whose allow list leaves it out, is not touched by it
    usable = {key for key in st.known if could_use(st, key, name)} if shape_changed or spec_changed else set()
    affected = st.unsatisfied | st.by_region.get(name, set()) | usable
    for ns, md in sorted(affected):
        requeue(st, ns, md, delay=0.2)
