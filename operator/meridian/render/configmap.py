"""The ConfigMap holding the generated Triton model repository configuration."""

from __future__ import annotations

import hashlib
from typing import Any

from meridian.api.modeldeployment import ModelDeployment
from meridian.render.labels import config_map_name, metadata
from meridian.runtime.repository import model_repository


def _key(path: str) -> str:
    # ConfigMap keys cannot hold '/': the volume's items map each key back to its path
    return path.replace("/", "__")


def config_map(md: ModelDeployment) -> dict[str, Any]:
    files = model_repository(md)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(md, config_map_name(md)),
        "data": {_key(p): c for p, c in sorted(files.items())},
    }


def config_items(md: ModelDeployment) -> list[dict[str, str]]:
    return [{"key": _key(p), "path": p} for p in sorted(model_repository(md))]


def config_hash(md: ModelDeployment) -> str:
    """Changes when the repository config changes, so pods restart to pick it up."""
    files = model_repository(md)
    digest = hashlib.sha256("\0".join(f"{p}\0{c}" for p, c in sorted(files.items())).encode())
    return digest.hexdigest()[:16]
