"""Services: one over every region (what clients call), one per region (for pinning and debugging)."""

from __future__ import annotations

from typing import Any

from meridian.api.modeldeployment import ModelDeployment
from meridian.render.deployment import container_ports
from meridian.render.labels import REGION_LABEL, metadata, selector
from meridian.render.names import label_value, model_service_name, regional_name
from meridian.runtime.launch import GRPC_PORT, HTTP_PORT, OPENAI_PORT


def ports(md: ModelDeployment) -> list[dict[str, Any]]:
    """The container's ports, each under its own name."""
    return [
        {"name": p["name"], "port": p["containerPort"], "targetPort": p["name"], "protocol": "TCP"}
        for p in container_ports(md)
    ]


def service(md: ModelDeployment, region: str | None = None) -> dict[str, Any]:
    sel = selector(md)
    if region is not None:
        sel = {**sel, REGION_LABEL: label_value(region)}
    name = model_service_name(md.metadata.name) if region is None else regional_name(md.metadata.name, region)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(md, name, region),
        "spec": {"selector": sel, "ports": ports(md)},
    }


def endpoints(md: ModelDeployment) -> dict[str, str]:
    host = f"{model_service_name(md.metadata.name)}.{md.metadata.namespace}.svc"
    out = {"http": f"http://{host}:{HTTP_PORT}", "grpc": f"{host}:{GRPC_PORT}"}
    if md.spec.runtime.openai.enabled:
        out["openai"] = f"http://{host}:{OPENAI_PORT}/v1"
    return out
