"""The Triton model repository Meridian generates for a ModelDeployment.

Returned as {relative path: file content}; render/ turns it into a ConfigMap mounted at /config.
"""

from __future__ import annotations

from meridian.api.modeldeployment import ModelDeployment

_BACKENDS = {"onnx": "onnxruntime", "pytorch": "pytorch", "tensorrt": "tensorrt", "python": "python"}


def model_repository(md: ModelDeployment) -> dict[str, str]:
    """Files of the model repository (config.pbtxt per model)."""
    name = md.model_name
    fmt = md.spec.model.format
    rt = md.spec.runtime
    backend = _BACKENDS.get(fmt, "tensorrtllm")
    kind = "KIND_CPU" if fmt == "python" else "KIND_GPU"
    config = (
        f'name: "{name}"\nbackend: "{backend}"\nmax_batch_size: {rt.max_batch_size}\n'
        f"instance_group [{{ count: 1, kind: {kind} }}]\ndynamic_batching {{ }}\n"
    )
    return {f"{name}/config.pbtxt": config}
