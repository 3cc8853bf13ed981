"""Kubernetes Events for the decisions a person would want to see (`kubectl describe mdep`, `rgn`).

Events are best-effort: an Events quota, a 429 or a timeout is logged and counted, never raised,
because nothing optional may stop an eviction or a status write that follows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from meridian import API_VERSION
from meridian.api.modeldeployment import ModelDeployment
from meridian.log import get as get_logger
from meridian.reconcile.kube import Kube
from meridian.reconcile.metrics import EVENTS_DROPPED
from meridian.render.names import event_prefix

log = get_logger("meridian.events")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def model_ref(md: ModelDeployment) -> dict[str, str]:
    return {
        "apiVersion": md.api_version,
        "kind": "ModelDeployment",
        "name": md.metadata.name,
        "namespace": md.metadata.namespace,
        "uid": md.metadata.uid,
    }


def region_ref(name: str, uid: str) -> dict[str, str]:
    """Events of a cluster-scoped Region live in the default namespace, as Node events do."""
    return {"apiVersion": API_VERSION, "kind": "Region", "name": name, "uid": uid, "namespace": ""}


async def emit(kube: Kube, involved: Mapping[str, str], reason: str, message: str, warning: bool = False) -> bool:
    """Post one Event; returns whether it was stored."""
    ts = now_iso()
    namespace = involved.get("namespace") or "default"
    event: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": event_prefix(involved["name"]), "namespace": namespace},
        "involvedObject": {k: v for k, v in involved.items() if v},
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
    try:
        await kube.create(event)
    except Exception as e:  # quota, 429, timeout, apiserver down: the decision stands without its Event
        EVENTS_DROPPED.labels(reason).inc()
        log.warning("event not recorded", reason=reason, object=involved.get("name"), error=str(e)[:200])
        return False
    return True


async def post(kube: Kube, md: ModelDeployment, reason: str, message: str, warning: bool = False) -> bool:
    return await emit(kube, model_ref(md), reason, message, warning)
