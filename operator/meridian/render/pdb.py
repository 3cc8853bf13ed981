"""One PodDisruptionBudget over all regions: voluntary evictions take one replica at a time."""

from __future__ import annotations

from typing import Any

from meridian.api.modeldeployment import ModelDeployment
from meridian.render.labels import metadata, selector


def pod_disruption_budget(md: ModelDeployment) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(md, md.metadata.name),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(md)}},
    }
