"""One kind's objects kept in memory by LIST then WATCH, the way client-go's informers do it.

A reconcile reads its World from these stores and sends no LIST or GET in the steady state. A
relist (after 410 Gone, or a watch that cannot resume) replaces the namespace's contents whole, so
an object deleted while the watch was down does not linger as it would in kopf's indexes. Objects
are stored as a projection: only the fields Meridian reads, which keeps a cluster's pods small.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from kubernetes_asyncio.client.exceptions import ApiException

from meridian.log import get as get_logger
from meridian.reconcile.kube import Kube, api_message, path, retry_after
from meridian.reconcile.metrics import CACHE_RELISTS

T = TypeVar("T")
Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped kinds
Change = Callable[[Key, Any, Any], None]  # (key, old projection or None, new projection or None)

PAGE = 500
WATCH_SECONDS = 300  # the API server ends each watch after this; we resume from the last version
FATAL = (401, 403, 404)  # a kind we may not watch, or that does not exist: waiting cannot fix it
UNSERVED_TRIES = 6  # lists of an optional kind after its CRD is established, before waiting again
BACKOFF = (0.5, 3.0)  # first and longest wait between tries: a restarted API server is seen within seconds

log = get_logger("meridian.informer")


class CacheUnavailable(Exception):
    """The API server refuses to let us list or watch a kind; the operator cannot run without it."""


class Informer(Generic[T]):
    """Objects of one kind in the given namespaces ("" for all, or a cluster-scoped kind).

    `project` turns a raw object into what is kept; returning None keeps nothing. `index_by` files
    each projection under one secondary key for lookups such as "children of this owner".
    `on_change` is called for every projection that changed, after the store holds the new one.
    """

    def __init__(
        self,
        kube: Kube,
        api_version: str,
        kind: str,
        *,
        namespaces: tuple[str, ...] = ("",),
        label_selector: str = "",
        project: Callable[[Mapping[str, Any]], T | None],
        index_by: Callable[[T], Hashable | None] | None = None,
        on_change: Change | None = None,
        optional: bool = False,
        on_served: Callable[[str], None] | None = None,
        on_reach: Callable[[bool], None] | None = None,
    ) -> None:
        """`optional`: a kind from a CRD the cluster may lack (Gateway API). While the API server
        does not serve it the store is empty, `served` is False, and the list waits for `wake`,
        which the CRD cache sets when that CRD becomes established: a CRD installed later is
        picked up without a restart and without polling; `on_served` hears when.
        `on_reach`: told False whenever a list or watch fails (the API server does not answer, or
        refuses), True whenever a list succeeds; with it, every failure is followed by a fresh
        list, so that the server answering again is known at once, not at the watch's first event."""
        self.kube = kube
        self.api_version, self.kind = api_version, kind
        self.namespaces = namespaces
        self.label_selector = label_selector
        self.project = project
        self.index_by = index_by
        self.on_change = on_change
        self.store: dict[Key, T] = {}
        self.index: dict[Hashable, dict[Key, T]] = {}
        self.listed: set[str] = set()
        self.synced = asyncio.Event()
        self.failure: CacheUnavailable | None = None
        self.optional = optional
        self.on_served = on_served
        self.on_reach = on_reach
        self.served = True
        self.wake = asyncio.Event()  # its CRD was established: list again

    def __repr__(self) -> str:
        return f"Informer({self.kind}, {len(self.store)} objects)"

    # reads

    def get(self, namespace: str, name: str) -> T | None:
        return self.store.get((namespace, name))

    def values(self) -> Iterator[T]:
        return iter(self.store.values())

    def by(self, index_key: Hashable) -> Mapping[Key, T]:
        return self.index.get(index_key, {})

    # writes, from the list and the watch only

    def _set(self, key: Key, new: T | None) -> None:
        old = self.store.get(key)
        if new is None:
            if key not in self.store:
                return
            del self.store[key]
        else:
            self.store[key] = new
        if self.index_by is not None:
            if old is not None and (ik := self.index_by(old)) is not None:
                bucket = self.index.get(ik, {})
                bucket.pop(key, None)
                if not bucket:
                    self.index.pop(ik, None)
            if new is not None and (ik := self.index_by(new)) is not None:
                self.index.setdefault(ik, {})[key] = new
        if old != new and self.on_change is not None:
            try:
                self.on_change(key, old, new)
            except Exception as e:  # a callback's bug must not stop the cache
                log.error("cache callback failed", kind=self.kind, object=f"{key[0]}/{key[1]}", error=repr(e))

    def _replace(self, namespace: str, objects: list[Mapping[str, Any]]) -> None:
        """A fresh list: everything in `namespace` ("" is all) that it lacks was deleted meanwhile.

        List items carry no apiVersion or kind of their own (watch events do); without them a
        child read from a list would never look in sync with what we apply."""
        fresh = {_key(o): self.project({"apiVersion": self.api_version, "kind": self.kind, **o}) for o in objects}
        for key in [k for k in self.store if (not namespace or k[0] == namespace) and k not in fresh]:
            self._set(key, None)
        for key, value in fresh.items():
            self._set(key, value)

    # I/O

    async def run(self) -> None:
        """Keep every namespace's store current until cancelled."""
        await asyncio.gather(*(self._run_one(ns) for ns in self.namespaces))

    async def _run_one(self, namespace: str) -> None:
        backoff = BACKOFF[0]
        version = ""
        tries = UNSERVED_TRIES
        while True:
            try:
                if not version:
                    version = await self._list(namespace)
                version = await self._watch(namespace, version)
                backoff = BACKOFF[0]
                continue
            except ApiException as e:
                if e.status == 410:  # too old to resume: list again
                    version = ""
                    continue
                if e.status == 404 and self.optional:
                    if self.served:
                        log.info("kind not served; waiting for its CRD", kind=self.kind)
                    self.served, version = False, ""
                    self._replace(namespace, [])
                    self.listed.add(namespace)
                    if self.listed >= set(self.namespaces):
                        self.synced.set()
                    if self.wake.is_set():  # established just now: discovery can lag by a moment
                        if tries := tries - 1:
                            await asyncio.sleep(backoff)
                            backoff = min(backoff * 2, BACKOFF[1])
                            continue
                        self.wake.clear()
                    await self.wake.wait()
                    tries = UNSERVED_TRIES
                    continue
                if e.status in FATAL and not self.synced.is_set():
                    self.failure = CacheUnavailable(
                        f"cannot list {self.kind} {_where(namespace)}: {e.status} {api_message(e)}"
                    )
                    self.synced.set()  # wake whoever waits; they find the failure
                    return
                wait = retry_after(e) or backoff
                log.info("cache retrying", kind=self.kind, where=_where(namespace), status=e.status, retry_in=wait)
                version = self._unreached(version)
                await asyncio.sleep(wait)
            except Exception as e:  # a dropped connection, a timeout, a torn line: resume, never die
                log.info(
                    "cache retrying", kind=self.kind, where=_where(namespace), error=repr(e)[:200], retry_in=backoff
                )
                version = self._unreached(version)
                await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF[1])

    def _unreached(self, version: str) -> str:
        """The version to resume from after a failure: none when someone is told of it."""
        if self.on_reach is None:
            return version
        self.on_reach(False)
        return ""

    async def _list(self, namespace: str) -> str:
        objects: list[Mapping[str, Any]] = []
        token, version = "", ""
        while True:
            query = [("limit", str(PAGE))]
            if self.label_selector:
                query.append(("labelSelector", self.label_selector))
            if token:
                query.append(("continue", token))
            page = await self.kube.request("GET", path(self.api_version, self.kind, namespace), query=query)
            objects.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            version = str(meta.get("resourceVersion") or "")
            token = str(meta.get("continue") or "")
            if not token:
                break
        if namespace in self.listed and self.served:
            CACHE_RELISTS.labels(self.kind).inc()
        if not self.served:
            log.info("kind served now", kind=self.kind)
            self.served = True
            self.wake.clear()
            if self.on_served is not None:
                self.on_served(self.kind)
        self._replace(namespace, objects)
        self.listed.add(namespace)
        if self.listed >= set(self.namespaces):
            self.synced.set()
        if self.on_reach is not None:
            self.on_reach(True)
        return version

    async def _watch(self, namespace: str, version: str) -> str:
        """Apply events until the server ends the watch; returns the version to resume from."""
        query = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", version),
            ("timeoutSeconds", str(WATCH_SECONDS)),
        ]
        if self.label_selector:
            query.append(("labelSelector", self.label_selector))
        async for event in self.kube.stream(path(self.api_version, self.kind, namespace), query, WATCH_SECONDS + 30):
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                error = ApiException(status=int(obj.get("code") or 500), reason=str(obj.get("reason") or ""))
                error.body = json.dumps(obj).encode()
                raise error
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            if kind in ("ADDED", "MODIFIED"):
                self._set(_key(obj), self.project(obj))
            elif kind == "DELETED":
                self._set(_key(obj), None)
        return version


def _key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def _where(namespace: str) -> str:
    return f"in {namespace}" if namespace else "cluster-wide"
