"""Every child of a ModelDeployment for a plan, in apply order (config before the pods using it)."""

from __future__ import annotations

from typing import Any

from meridian.api.modeldeployment import ModelDeployment
from meridian.config import Settings
from meridian.placement.plan import Plan
from meridian.render.configmap import config_map
from meridian.render.deployment import deployment
from meridian.render.pdb import pod_disruption_budget
from meridian.render.routing import routing_children
from meridian.render.service import service
from meridian.runtime.repository import model_repository


def children(md: ModelDeployment, plan: Plan, settings: Settings) -> list[dict[str, Any]]:
    files = model_repository(md)  # generated once: the ConfigMap and every region's pods refer to it
    out = [config_map(md, files), service(md)]
    for target in plan.targets:
        out.append(service(md, target.region))
        out.append(deployment(md, target, settings, files))
    out.append(pod_disruption_budget(md))
    return out + routing_children(md, plan, settings)
