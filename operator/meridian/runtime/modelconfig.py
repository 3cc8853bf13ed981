"""Building blocks of a Triton ModelConfig (model_config.proto), as pbtxt messages.

Field names are the proto's; a helper exists only where Triton's rules are easy to get wrong
(reshape to a scalar, string parameters, batching that needs max_batch_size > 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from meridian.runtime.pbtxt import Ident, Message

InstanceKind = Literal["KIND_GPU", "KIND_CPU"]


@dataclass(frozen=True)
class Tensor:
    """One model input or output.

    `scalar` reshapes a [1] tensor to shape [] inside the model, as the TensorRT-LLM backend
    expects for per-request parameters; `ragged` lets requests of different lengths batch together.
    """

    name: str
    dtype: str
    dims: tuple[int, ...]
    optional: bool = False
    scalar: bool = False
    ragged: bool = False

    def message(self, *, is_input: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "data_type": Ident(f"TYPE_{self.dtype}"), "dims": list(self.dims)}
        if self.scalar:
            out["reshape"] = {"shape": []}
        if is_input and self.optional:
            out["optional"] = True
        if is_input and self.ragged:
            out["allow_ragged_batch"] = True
        return out


def tensor(
    name: str, dtype: str, *dims: int, optional: bool = False, scalar: bool = False, ragged: bool = False
) -> Tensor:
    """Shorthand: tensor("input_ids", "INT32", -1, optional=True, ragged=True)."""
    return Tensor(name, dtype, tuple(dims), optional=optional, scalar=scalar, ragged=ragged)


def inputs(tensors: Sequence[Tensor]) -> list[dict[str, Any]]:
    return [t.message(is_input=True) for t in tensors]


def outputs(tensors: Sequence[Tensor]) -> list[dict[str, Any]]:
    return [t.message(is_input=False) for t in tensors]


def parameters(values: Mapping[str, str]) -> list[dict[str, Any]]:
    """Model parameters: Triton's map<string, ModelParameter> where every value is a string."""
    return [{"key": k, "value": {"string_value": v}} for k, v in values.items()]


def instance_group(kind: InstanceKind, count: int = 1) -> list[dict[str, Any]]:
    """One group; for KIND_GPU without a gpus list Triton places `count` instances on every visible GPU."""
    return [{"count": count, "kind": Ident(kind)}]


def dynamic_batching(max_batch_size: int, **fields: Any) -> Message | None:
    """Dynamic batching, or None when the model does not batch (max_batch_size 0 forbids it)."""
    if max_batch_size <= 0:
        return None
    return dict(fields)


def model_config(**fields: Any) -> dict[str, Any]:
    """A ModelConfig message; None-valued fields are left out so callers can pass optional blocks."""
    return {k: v for k, v in fields.items() if v is not None}
