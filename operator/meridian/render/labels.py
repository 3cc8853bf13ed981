"""Labels and the owner reference every child carries; the selector contract between Deployments and
Services. Label values of long names are shortened with a hash (names.py).
"""

from __future__ import annotations

from typing import Any

from meridian import API_VERSION, GROUP
from meridian.api.modeldeployment import ModelDeployment
from meridian.render.names import label_value

MD_LABEL = f"{GROUP}/model-deployment"
REGION_LABEL = f"{GROUP}/region"
MANAGED_BY = "app.kubernetes.io/managed-by"
# the Inference Extension's endpoint picker reads each pod's metrics by the engine this label names
ENGINE_LABEL = "inference.networking.k8s.io/engine-type"
TRITON_ENGINE = "triton-tensorrt-llm"


def selector(md: ModelDeployment) -> dict[str, str]:
    return {MD_LABEL: label_value(md.metadata.name)}


def selector_string(md: ModelDeployment) -> str:
    return ",".join(f"{k}={v}" for k, v in selector(md).items())


def labels(md: ModelDeployment, region: str | None = None) -> dict[str, str]:
    out = {
        "app.kubernetes.io/name": "triton",
        "app.kubernetes.io/instance": label_value(md.metadata.name),
        MANAGED_BY: "meridian",
        MD_LABEL: label_value(md.metadata.name),
    }
    if region is not None:
        out[REGION_LABEL] = label_value(region)
    return out


def owner_reference(md: ModelDeployment) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelDeployment",
        "name": md.metadata.name,
        "uid": md.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(md: ModelDeployment, name: str, region: str | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": md.metadata.namespace,
        "labels": labels(md, region),
        "ownerReferences": [owner_reference(md)],
    }
