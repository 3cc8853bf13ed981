"""status.runtime: what Triton itself reports, read from one ready pod when the operator can reach it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meridian.api.modeldeployment import ModelDeployment
from meridian.reconcile.kube import Kube
from meridian.runtime.launch import HTTP_PORT
from meridian.runtime.probe import probe_model
from meridian.sync.observe import pod_ready

FIELD_MANAGER = "meridian-runtime"


def ready_pod_ips(pods: list[dict[str, Any]]) -> list[str]:
    out = []
    for pod in pods:
        status = pod.get("status") or {}
        if pod_ready(pod) and status.get("podIP") and not pod["metadata"].get("deletionTimestamp"):
            out.append(str(status["podIP"]))
    return sorted(out)


async def probe_runtime(kube: Kube, body: Mapping[str, Any], pods: list[dict[str, Any]]) -> bool:
    """Write status.runtime when one of the model's ready `pods` (from the cache) answered and the
    answer changed; True when written."""
    md = ModelDeployment.model_validate(dict(body))
    for ip in ready_pod_ips(pods):
        answer = await probe_model(f"{ip}:{HTTP_PORT}", md.model_name)
        if answer is None:
            continue  # unreachable (simulated node, network policy): not an error
        runtime = answer.wire()
        if md.status.runtime is not None and md.status.runtime.wire() == runtime:
            return False
        await kube.apply_status(
            "ModelDeployment", md.metadata.namespace, md.metadata.name, {"runtime": runtime}, FIELD_MANAGER
        )
        return True
    return False
