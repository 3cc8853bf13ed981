"""The ConfigMap holding the generated Triton model repository configuration."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from meridian.api.modeldeployment import ModelDeployment
from meridian.render.labels import metadata
from meridian.render.names import config_map_name


def _key(path: str) -> str:
    # ConfigMap keys cannot hold '/': the volume's items map each key back to its path
    return path.replace("/", "__")


def config_map(md: ModelDeployment, files: Mapping[str, str]) -> dict[str, Any]:
    """`files` is runtime.repository.model_repository(md), generated once per reconcile by the caller."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(md, config_map_name(md.metadata.name)),
        "data": {_key(p): c for p, c in sorted(files.items())},
    }


def config_items(files: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": _key(p), "path": p} for p in sorted(files)]


def config_hash(files: Mapping[str, str]) -> str:
    """Changes when the repository config changes, so pods restart to pick it up."""
    digest = hashlib.sha256("\0".join(f"{p}\0{c}" for p, c in sorted(files.items())).encode())
    return digest.hexdigest()[:16]
