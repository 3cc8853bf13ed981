"""The Triton model repository Meridian generates for a ModelDeployment.

Returned as {relative path: file content}; render/ turns it into a ConfigMap whose items are mounted
into /models. Only configuration lives here: model files come from storageUri (see layout.py).
"""

from __future__ import annotations

from meridian.api.modeldeployment import ModelDeployment
from meridian.runtime.backends import single_model_config
from meridian.runtime.trtllm import trtllm_repository


def model_repository(md: ModelDeployment) -> dict[str, str]:
    """Files of the model repository: one config.pbtxt per Triton model."""
    name = md.model_name
    fmt = md.spec.model.format
    if fmt == "tensorrt-llm":
        return trtllm_repository(md, name)
    return {f"{name}/config.pbtxt": single_model_config(name, fmt, md.spec.runtime.max_batch_size)}
