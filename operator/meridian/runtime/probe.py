"""Asking a running Triton what it serves, for ModelDeployment status.runtime.

Pods on simulated nodes, or behind a network the operator cannot reach, are normal: the probe
then returns None within its timeout and never raises, so reconcile simply leaves the field alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tritonclient.http.aio import InferenceServerClient

from meridian.api.modeldeployment import RuntimeStatus

DEFAULT_TIMEOUT = 2.0


async def _ask(client: InferenceServerClient, model: str) -> RuntimeStatus:
    server: dict[str, Any] = await client.get_server_metadata()
    ready = bool(await client.is_model_ready(model))
    status = RuntimeStatus(model_ready=ready, server_version=str(server.get("version", "")))
    if ready:
        meta: dict[str, Any] = await client.get_model_metadata(model)
        status.model_versions = [str(v) for v in meta.get("versions", [])]
        status.platform = str(meta.get("platform", ""))
    return status


async def probe_model(address: str, model: str, timeout_seconds: float = DEFAULT_TIMEOUT) -> RuntimeStatus | None:
    """Readiness, versions, platform and server version of `model` at address ("host:port" of HTTP).

    None when the server cannot be reached or does not answer within timeout_seconds. A reachable
    server that does not (yet) serve the model gives model_ready=False.
    """
    try:
        async with asyncio.timeout(timeout_seconds):
            client = InferenceServerClient(address, conn_timeout=timeout_seconds)
            try:
                return await _ask(client, model)
            finally:
                with contextlib.suppress(Exception):
                    await client.close()
    except Exception:  # unreachable, refused, reset, timed out, not Triton: all mean "no answer"
        return None
