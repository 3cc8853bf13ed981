"""Routing in a pass: whether the cluster can hold the route at all, and what the Gateway said of it.

The Gateway (Istio, agentgateway, NGINX Gateway Fabric, ...) reports on the HTTPRoute and on the
InferencePool in their `status.parents`, one entry per Gateway; only the model's own Gateway counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meridian.api.modeldeployment import ModelDeployment
from meridian.placement.types import Problem
from meridian.render.routing import EXT_PROC_PORT, POOL_API, ROUTE_API, picker_name, pool_name
from meridian.sync.world import ChildKey

NEEDED = {"InferencePool": POOL_API, "HTTPRoute": ROUTE_API}


def routing_problems(md: ModelDeployment, unserved: frozenset[str]) -> list[Problem]:
    """spec.routing in a cluster without the Gateway API or Inference Extension CRDs: a person must install them."""
    missing = [f"{kind} ({api})" for kind, api in NEEDED.items() if kind in unserved]
    if md.spec.routing is None or not missing:
        return []
    return [
        Problem(
            "RoutingUnavailable",
            f"spec.routing needs {' and '.join(missing)}, which this cluster does not serve: install the Gateway "
            "API and Inference Extension CRDs, or remove spec.routing",
        )
    ]


def _gateway(md: ModelDeployment) -> tuple[str, str]:
    gw = md.spec.routing.gateway if md.spec.routing else None
    assert gw is not None
    return gw.namespace or md.metadata.namespace, gw.name


def _verdict(obj: Mapping[str, Any] | None, md: ModelDeployment) -> tuple[str, str]:
    """("True" | "False" | "Unknown", why) for one object, from its entry for the model's Gateway."""
    if obj is None:
        return "Unknown", "not seen yet"
    namespace, name = _gateway(md)
    for parent in (obj.get("status") or {}).get("parents") or []:
        ref = parent.get("parentRef") or {}
        if ref.get("name") != name or (ref.get("namespace") or md.metadata.namespace) != namespace:
            continue
        if ref.get("kind", "Gateway") != "Gateway":
            continue
        conditions = {c.get("type"): c for c in parent.get("conditions") or []}
        refused = [c for t, c in conditions.items() if t in ("Accepted", "ResolvedRefs") and c.get("status") == "False"]
        if refused:
            c = refused[0]
            return "False", f"{c.get('type')}=False ({c.get('reason')}): {c.get('message', '')}".strip()
        if (conditions.get("Accepted") or {}).get("status") == "True":
            return "True", "accepted"
    return "Unknown", f"Gateway {namespace}/{name} has not reported on it yet"


def routing_status(md: ModelDeployment, owned: Mapping[ChildKey, Mapping[str, Any]]) -> dict[str, Any] | None:
    """status.routing: what exists and whether the Gateway took the route and the pool."""
    if md.spec.routing is None:
        return None
    namespace, name = _gateway(md)
    pool = pool_name(md)
    route_said = _verdict(owned.get(("HTTPRoute", pool)), md)
    pool_said = _verdict(owned.get(("InferencePool", pool)), md)
    if "False" in (route_said[0], pool_said[0]):
        accepted = "False"
    elif route_said[0] == pool_said[0] == "True":
        accepted = "True"
    else:
        accepted = "Unknown"
    picker = owned.get(("Deployment", picker_name(md))) or {}
    return {
        "gateway": f"{namespace}/{name}",
        "httpRoute": pool,
        "inferencePool": pool,
        "endpointPicker": f"{picker_name(md)}.{md.metadata.namespace}.svc:{EXT_PROC_PORT}",
        "accepted": accepted,
        "message": f"HTTPRoute: {route_said[1]}; InferencePool: {pool_said[1]}",
        "endpointPickerReady": int((picker.get("status") or {}).get("readyReplicas") or 0) > 0,
    }
