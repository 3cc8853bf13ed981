"""A small async Kubernetes client: get, watch, server-side apply, delete, by REST path.

Built on kubernetes_asyncio's ApiClient for auth and TLS; only the handful of kinds Meridian touches
are known here, so a request's path can be read at a glance. Every request has a timeout: a hung
API server fails the pass (which is retried with backoff) instead of holding a model's lock.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client.exceptions import ApiException

from meridian import FIELD_MANAGER, GROUP, VERSION, __version__
from meridian.reconcile.metrics import API_WRITES
from meridian.render.reach import CLUSTER_PROXY

PLURALS: dict[tuple[str, str], str] = {
    ("apps/v1", "Deployment"): "deployments",
    ("v1", "Service"): "services",
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Pod"): "pods",
    ("v1", "Node"): "nodes",
    ("v1", "Event"): "events",
    ("v1", "Namespace"): "namespaces",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("v1", "ServiceAccount"): "serviceaccounts",
    ("rbac.authorization.k8s.io/v1", "Role"): "roles",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rolebindings",
    ("inference.networking.k8s.io/v1", "InferencePool"): "inferencepools",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "httproutes",
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): "customresourcedefinitions",
    (f"{GROUP}/{VERSION}", "ModelDeployment"): "modeldeployments",
    (f"{GROUP}/{VERSION}", "Region"): "regions",
    ("kopf.dev/v1", "KopfPeering"): "kopfpeerings",
    ("kopf.dev/v1", "ClusterKopfPeering"): "clusterkopfpeerings",
    ("policy.karmada.io/v1alpha1", "PropagationPolicy"): "propagationpolicies",
}
CLUSTER_SCOPED = {"Node", "Namespace", "Region", "ClusterKopfPeering", "CustomResourceDefinition"}
USER_AGENT = f"meridian/{__version__}"
REQUEST_TIMEOUT_SECONDS = 10.0


# what a YAML double-quoted scalar cannot hold raw (C1 controls, line breaks YAML folds, BOM,
# non-characters) or at all (lone surrogates); it takes \\uXXXX for any other BMP character
_NOT_YAML_RAW = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return "\\ufffd" if "\ud800" <= char <= "\udfff" else f"\\u{ord(char):04x}"


def apply_body(obj: Any) -> bytes:
    """An apply body as UTF-8 JSON that the API server's YAML reader takes back unchanged: JSON's
    own escapes of astral characters (surrogate pairs) are invalid YAML, so those go raw, and what
    YAML cannot carry raw goes escaped."""
    return _NOT_YAML_RAW.sub(_escape, json.dumps(obj, ensure_ascii=False)).encode()


def retry_after(error: BaseException) -> float | None:
    """Seconds the API server asked us to wait (429, 503 with Retry-After), else None."""
    if not isinstance(error, ApiException) or error.status not in (429, 503):
        return None
    headers = getattr(error, "headers", None) or {}
    try:
        return max(1.0, float(headers.get("Retry-After", 1)))
    except (TypeError, ValueError):
        return 1.0


def api_message(error: ApiException) -> str:
    """The API server's own message in an error's Status body, else the HTTP reason."""
    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)
    except (TypeError, ValueError, AttributeError):
        return str(error.reason)


def _error(response: Any, text: str) -> ApiException:
    """The ApiException the client would raise for this response, with its body and headers."""
    error = ApiException(status=response.status, reason=response.reason)
    error.body = text  # type: ignore[assignment]  # api_message reads str or bytes alike
    error.headers = response.headers
    return error


CREATE_ONLY = "1"  # etcd's first revision, taken before any object of a cluster is written


def path(api_version: str, kind: str, namespace: str = "", name: str = "", subresource: str = "") -> str:
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if namespace and kind not in CLUSTER_SCOPED:
        base += f"/namespaces/{namespace}"
    base += f"/{PLURALS[(api_version, kind)]}"
    if name:
        base += f"/{name}"
    if subresource:
        base += f"/{subresource}"
    return base


class Kube:
    """The requests Meridian makes, and a count of the writes among them."""

    def __init__(self, api: k8s.ApiClient, timeout: float = REQUEST_TIMEOUT_SECONDS, prefix: str = "") -> None:
        """`prefix`: put before every path; a member cluster's API behind Karmada's cluster proxy."""
        self.api = api
        self.api.user_agent = USER_AGENT
        self.timeout = timeout
        self.prefix = prefix
        self.writes = 0

    def member(self, cluster: str) -> Kube:
        """The same client, speaking to a Karmada member cluster through Karmada's cluster proxy:
        the operator needs no credential of its own for any member."""
        return Kube(self.api, self.timeout, CLUSTER_PROXY.format(cluster))

    @classmethod
    async def connect(cls) -> Kube:
        try:
            k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
        except k8s_config.ConfigException:
            await k8s_config.load_kube_config()
        return cls(k8s.ApiClient())

    async def close(self) -> None:
        await self.api.close()

    async def request(
        self,
        method: str,
        resource_path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
        kind: str = "",
    ) -> dict[str, Any]:
        if method != "GET":
            self.writes += 1
            API_WRITES.labels(method, kind).inc()
        async with asyncio.timeout(self.timeout):  # connect, send and read the body, all of it
            return await self._call(method, resource_path, body, query, content_type)

    async def _call(
        self, method: str, resource_path: str, body: Any, query: list[tuple[str, str]] | None, content_type: str
    ) -> dict[str, Any]:
        response = await self.api.call_api(
            self.prefix + resource_path,
            method,
            query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
            _request_timeout=self.timeout,
        )
        text = await response.text()
        if not 200 <= response.status <= 299:  # _preload_content=False skips the client's own check
            raise _error(response, text)
        return json.loads(text) if text else {}

    async def stream(
        self, resource_path: str, query: list[tuple[str, str]], idle_seconds: float
    ) -> AsyncIterator[dict[str, Any]]:
        """A watch: one decoded event per line until the server closes it; `idle_seconds` of
        silence (no event, no bookmark) ends it with a TimeoutError."""
        timeout = aiohttp.ClientTimeout(sock_connect=self.timeout, sock_read=idle_seconds)
        response = await self.api.call_api(
            self.prefix + resource_path,
            "GET",
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
            _request_timeout=timeout,
        )
        try:
            if not 200 <= response.status <= 299:
                raise _error(response, await response.text())
            buffer = b""
            async for chunk in response.content.iter_any():  # lines of any length, unlike readline
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        finally:
            response.release()

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.request("GET", path(api_version, kind, namespace, name))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    async def apply(
        self, obj: dict[str, Any], subresource: str = "", field_manager: str = FIELD_MANAGER
    ) -> dict[str, Any]:
        """Server-side apply, forcing ownership of every field we send.

        Status parts written on their own schedule (runtime probe, autoscaler) use their own field
        manager, so one writer never removes what another applied.
        """
        meta = obj["metadata"]
        return await self.request(
            "PATCH",
            path(obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"], subresource),
            body=apply_body(obj),
            query=[("fieldManager", field_manager), ("force", "true")],
            # with a parameter the client passes our bytes through instead of json.dumps-ing them;
            # the API server drops it when it reads the patch type
            content_type="application/apply-patch+yaml; charset=utf-8",
            kind=obj["kind"] + (f"/{subresource}" if subresource else ""),
        )

    async def create_only(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply of a name this model does not hold yet: created when the name is free,
        else 409 Conflict, so that no one else's object is ever taken over, with no read first.
        The precondition is a resourceVersion no existing object has; the API server ignores it
        when it creates the object."""
        return await self.apply({**obj, "metadata": {**obj["metadata"], "resourceVersion": CREATE_ONLY}})

    async def apply_status(
        self, kind: str, namespace: str, name: str, status: dict[str, Any], field_manager: str = FIELD_MANAGER
    ) -> dict[str, Any]:
        """Server-side apply of one of our own objects' status (ModelDeployment, Region)."""
        meta = {"name": name, "namespace": namespace} if namespace else {"name": name}
        obj = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": meta, "status": status}
        return await self.apply(obj, subresource="status", field_manager=field_manager)

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        ns = obj["metadata"].get("namespace", "")
        return await self.request("POST", path(obj["apiVersion"], obj["kind"], ns), body=obj, kind=obj["kind"])

    async def patch(self, api_version: str, kind: str, namespace: str, name: str, merge: dict[str, Any]) -> None:
        """A JSON merge patch of one of our own objects (scaling an evicted Deployment to zero)."""
        await self.request(
            "PATCH",
            path(api_version, kind, namespace, name),
            body=merge,
            content_type="application/merge-patch+json",
            kind=kind,
        )

    async def patch_json(
        self, api_version: str, kind: str, namespace: str, name: str, ops: list[dict[str, Any]]
    ) -> None:
        """A JSON patch (RFC 6902), whose `test` operations make it apply only to what was read."""
        await self.request(
            "PATCH",
            path(api_version, kind, namespace, name),
            body=ops,
            content_type="application/json-patch+json",
            kind=kind,
        )

    async def delete(
        self, api_version: str, kind: str, namespace: str, name: str, grace_seconds: int | None = None
    ) -> bool:
        """Delete; False when already gone. `grace_seconds=0` stops a pod at once (a residency violation)."""
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if grace_seconds is not None:
            body["gracePeriodSeconds"] = grace_seconds
        try:
            await self.request("DELETE", path(api_version, kind, namespace, name), body=body, kind=kind)
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True
