"""Kubernetes Events for the decisions a person would want to see (`kubectl describe mdep`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from meridian.api.modeldeployment import ModelDeployment
from meridian.reconcile.kube import Kube


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def post(kube: Kube, md: ModelDeployment, reason: str, message: str, warning: bool = False) -> None:
    ts = now_iso()
    event: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{md.metadata.name}.", "namespace": md.metadata.namespace},
        "involvedObject": {
            "apiVersion": md.api_version,
            "kind": "ModelDeployment",
            "name": md.metadata.name,
            "namespace": md.metadata.namespace,
            "uid": md.metadata.uid,
        },
        "reason": reason,
        "message": message[:1024],
        "type": "Warning" if warning else "Normal",
        "source": {"component": "meridian"},
        "reportingComponent": "serving.meridian.dev/meridian",
        "reportingInstance": "meridian",
        "firstTimestamp": ts,
        "lastTimestamp": ts,
        "count": 1,
    }
    await kube.create(event)
