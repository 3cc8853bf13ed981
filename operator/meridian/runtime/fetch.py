"""The init container that puts the model files into the repository volume."""

from __future__ import annotations

from typing import Any

from meridian.api.modeldeployment import ModelDeployment
from meridian.runtime.launch import MODEL_REPOSITORY


def fetch_init_containers(md: ModelDeployment, image: str) -> list[dict[str, Any]]:
    """Init containers copying storageUri into the model repository (none for pvc://, mounted directly)."""
    uri = md.spec.model.storage_uri
    if uri.startswith("pvc://"):
        return []
    return [
        {
            "name": "fetch-model",
            "image": image,
            "args": [uri, f"{MODEL_REPOSITORY}/{md.model_name}/1"],
            "volumeMounts": [{"name": "model-repository", "mountPath": MODEL_REPOSITORY}],
        }
    ]
