"""config.pbtxt for the single-model formats: onnx, pytorch, tensorrt, python.

Inputs and outputs are not written: Triton's auto-complete reads them from the model file for
onnx and tensorrt, and from `auto_complete_config` in model.py for python (which is also where a
python model declares itself decoupled). So the Triton container must not run with
--disable-auto-complete-config for these formats. The PyTorch backend cannot auto-complete, so a
TorchScript model also needs inputs and outputs, passed here as `tensors` once the API carries them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meridian.runtime.modelconfig import (
    InstanceKind,
    Tensor,
    dynamic_batching,
    inputs,
    instance_group,
    model_config,
    outputs,
)
from meridian.runtime.pbtxt import render


@dataclass(frozen=True)
class Backend:
    """How Triton runs one format; platform and backend are both set so neither is guessed."""

    backend: str
    platform: str | None
    kind: InstanceKind
    default_file: str


BACKENDS: dict[str, Backend] = {
    "onnx": Backend("onnxruntime", "onnxruntime_onnx", "KIND_GPU", "model.onnx"),
    "pytorch": Backend("pytorch", "pytorch_libtorch", "KIND_GPU", "model.pt"),
    "tensorrt": Backend("tensorrt", "tensorrt_plan", "KIND_GPU", "model.plan"),
    # python models run on CPU instances; a model.py that wants a GPU picks it itself
    "python": Backend("python", None, "KIND_CPU", "model.py"),
}


def single_model_config(
    name: str,
    fmt: str,
    max_batch_size: int,
    *,
    input_tensors: Sequence[Tensor] = (),
    output_tensors: Sequence[Tensor] = (),
) -> str:
    """config.pbtxt of one model served by one backend, batching dynamically when it can batch."""
    spec = BACKENDS[fmt]
    return render(
        model_config(
            name=name,
            platform=spec.platform,
            backend=spec.backend,
            max_batch_size=max_batch_size,
            input=inputs(input_tensors) or None,
            output=outputs(output_tensors) or None,
            instance_group=instance_group(spec.kind),
            dynamic_batching=dynamic_batching(max_batch_size),
        )
    )
