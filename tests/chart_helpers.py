"""Helpers for the chart tests: the Go-built helm and kubeconform, offline JSON schemas for
kubeconform, and a kubeconfig that authenticates as a ServiceAccount.

kubeconform normally downloads its schemas; here nothing outside the package registries is
reachable, so the schemas are made locally: the built-in kinds from the running API server's
OpenAPI v3 documents, our kinds from the CRD files the chart ships. Both are made strict
(additionalProperties: false wherever the API server would prune or reject unknown fields), so a
misspelt field fails validation instead of being silently dropped at apply time.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import ssl
import subprocess
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from kubernetes import client
from yarl import URL

from meridian.sim import binaries

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "meridian"


def tool(name: str) -> Path:
    """A Go-built tool from the build cache: a missing one fails under CI=true, else skips."""
    for directory in binaries.search_path():
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.resolve()
    message = f"{name} not found in {', '.join(map(str, binaries.search_path()))}; build it with `make tools`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


class Helm:
    """helm with its own config/cache/data homes, so tests never read or write the user's."""

    def __init__(self, binary: Path, home: Path) -> None:
        self.binary = binary
        self.env = {
            **os.environ,
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def run(self, *args: str, kubeconfig: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.binary), *args]
        if kubeconfig is not None:
            cmd.append(f"--kubeconfig={kubeconfig}")
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=self.env)

    def template(self, release: str, namespace: str, values: Mapping[str, Any], values_file: Path) -> str:
        values_file.write_text(yaml.safe_dump(dict(values)))
        done = self.run("template", release, str(CHART), "--namespace", namespace, "--values", str(values_file))
        assert done.returncode == 0, done.stderr
        return done.stdout


def documents(manifest: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(manifest) if d]


# -- offline schemas for kubeconform ----------------------------------------------------------------


def schema_location(root: Path) -> str:
    """kubeconform's -schema-location template for the layout written by the functions below."""
    return str(root) + "/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"


def schema_path(root: Path, api_version: str, kind: str) -> Path:
    # kubeconform's template variables: Group is the part before "/" ("v1" for the core group),
    # ResourceAPIVersion the part after it, ResourceKind the lowercased kind
    parts = api_version.split("/")
    return root / parts[0] / f"{kind.lower()}_{parts[-1]}.json"


def strict(schema: Any) -> Any:
    """Forbid unknown fields in every object schema that lists its properties (as the API server's
    strict field validation does), and accept null where the schema says nullable.

    Walks schema positions only: a property may itself be named "anyOf" or "x-kubernetes-..."
    (JSONSchemaProps has both), so keys of a properties map are never read as keywords.
    """
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in ("properties", "patternProperties", "definitions"):
        if isinstance(out.get(key), dict):
            out[key] = {name: strict(sub) for name, sub in out[key].items()}
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(out.get(key), list):
            out[key] = [strict(sub) for sub in out[key]]
    for key in ("not", "additionalProperties", "additionalItems"):
        if isinstance(out.get(key), dict):
            out[key] = strict(out[key])
    if isinstance(out.get("items"), list):
        out["items"] = [strict(sub) for sub in out["items"]]
    elif isinstance(out.get("items"), dict):
        out["items"] = strict(out["items"])
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if out.get("x-kubernetes-int-or-string") is True:
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _get(api: client.ApiClient, path: str) -> dict[str, Any]:
    request = api.param_serialize(
        "GET", path, header_params={"Accept": "application/json"}, auth_settings=["BearerToken"]
    )
    response = api.call_api(*request)
    response.read()  # type: ignore[no-untyped-call]
    assert response.data is not None, path
    data: dict[str, Any] = json.loads(response.data)
    return data


def write_builtin_schemas(api: client.ApiClient, root: Path) -> int:
    """One JSON schema per built-in kind from the API server's OpenAPI v3, refs kept resolvable.

    Each file embeds its group-version's components, so the "#/components/schemas/..." references
    of the OpenAPI document resolve inside the file itself.
    """
    written = 0
    for doc_path in _get(api, "/openapi/v3")["paths"]:
        parts = doc_path.split("/")
        if parts == ["api", "v1"]:
            group, version = "", "v1"
        elif len(parts) == 3 and parts[0] == "apis":
            group, version = parts[1], parts[2]
        else:
            continue
        raw = _get(api, f"/openapi/v3/{doc_path}").get("components", {}).get("schemas", {})
        components = {name: strict(schema) for name, schema in raw.items()}
        for schema in components.values():
            for gvk in schema.get("x-kubernetes-group-version-kind", []):
                # every document also lists shared kinds (DeleteOptions, WatchEvent) of other groups
                if (gvk["group"], gvk["version"]) != (group, version):
                    continue
                path = schema_path(root, f"{group}/{version}" if group else version, gvk["kind"])
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps({**schema, "components": {"schemas": components}}))
                written += 1
    return written


def crd_documents(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                yield doc


def write_crd_schemas(crds: Iterable[Mapping[str, Any]], root: Path) -> int:
    """One strict JSON schema per served version of each CRD."""
    written = 0
    for crd in crds:
        spec = crd["spec"]
        for version in spec["versions"]:
            schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
            props = schema.setdefault("properties", {})
            props.setdefault("apiVersion", {"type": "string"})
            props.setdefault("kind", {"type": "string"})
            props.setdefault("metadata", {"type": "object"})
            path = schema_path(root, f"{spec['group']}/{version['name']}", spec["names"]["kind"])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(strict(schema)))
            written += 1
    return written


def kubeconform(binary: Path, root: Path, manifest: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """Validate a multi-document manifest against the offline schemas only (no download fallback)."""
    return subprocess.run(
        [
            str(binary),
            "-strict",
            "-summary",
            "-output",
            "json",
            "-schema-location",
            schema_location(root),
            *extra,
            "-",
        ],
        input=manifest,
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- acting as a ServiceAccount ---------------------------------------------------------------------


def service_account_token(api: client.ApiClient, namespace: str, name: str, seconds: int = 3600) -> str:
    """A bound token from the TokenRequest API, as the kubelet would mount into the pod."""
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(expiration_seconds=seconds))
    status = client.CoreV1Api(api).create_namespaced_service_account_token(name, namespace, request).status
    assert status is not None and status.token
    return str(status.token)


def admin_cluster(admin_kubeconfig: Path) -> dict[str, Any]:
    """The current cluster entry ({"name", "cluster": {"server", "certificate-authority"}})."""
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    cluster: dict[str, Any] = next(c for c in admin["clusters"] if c["name"] == context["cluster"])
    return cluster


def token_kubeconfig(admin_kubeconfig: Path, token: str, path: Path, user: str, server: str = "") -> Path:
    """The admin kubeconfig's server and CA (or another server, e.g. a RecordingProxy's), with the
    token as the only credential."""
    cluster = admin_cluster(admin_kubeconfig)
    if server:
        cluster = {"name": cluster["name"], "cluster": {"server": server}}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": cluster["name"], "user": user}}],
        "current-context": user,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


class RecordingProxy:
    """A plain-HTTP reverse proxy to the API server that records the status of every response.

    The operator reports success even for some failed writes, so whether its identity was ever
    denied is read here, on the wire: (method, path, status) of each request, watches included
    (streamed through).
    """

    HOP_BY_HOP = frozenset({"connection", "content-length", "content-encoding", "transfer-encoding", "keep-alive"})

    def __init__(self, admin_kubeconfig: Path) -> None:
        cluster = admin_cluster(admin_kubeconfig)["cluster"]
        self.upstream = cluster["server"].rstrip("/")
        self.ssl = ssl.create_default_context(cafile=cluster["certificate-authority"])
        self.records: list[tuple[str, str, int]] = []
        self.url = ""
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="recording-proxy", daemon=True)

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("recording proxy did not start")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def denied(self) -> list[tuple[str, str, int]]:
        return [r for r in list(self.records) if r[2] in (401, 403)]

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _shutdown(self) -> None:
        await self._runner.cleanup()
        await self._session.close()
        # watches whose client has gone still wait on the API server: end them
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.ssl),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
            auto_decompress=True,
        )
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in self.HOP_BY_HOP | {"host"}}
        body = await request.read()
        target = URL(self.upstream + request.raw_path, encoded=True)
        async with self._session.request(request.method, target, headers=headers, data=body or None) as upstream:
            self.records.append((request.method, request.raw_path, upstream.status))
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in upstream.headers.items():
                if key.lower() not in self.HOP_BY_HOP:
                    response.headers[key] = value
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except (ConnectionResetError, aiohttp.ClientError):
                pass  # the client went away (a watch the operator closed on shutdown)
            return response
