"""What the runtime can tell is wrong with a spec before any pod starts (pure).

These are the runtime rules the API server's CEL validation does not express; each one stalls the
ModelDeployment with a message naming the field, since pods rendered from such a spec could only
crash-loop. Secrets are checked separately (storage.credentials_problem), as that needs a read.
"""

from __future__ import annotations

from meridian.api.modeldeployment import ModelDeployment
from meridian.placement.plan import Problem
from meridian.runtime.storage import StorageUriError, parse_uri
from meridian.runtime.trtllm import COMPONENTS


def spec_problems(md: ModelDeployment) -> list[Problem]:
    """Problems with reason InvalidRuntimeSpec, in field order; empty when the runtime can serve the spec."""
    spec = md.spec
    model, rt = spec.model, spec.runtime
    messages: list[str] = []
    for field, uri in (("storageUri", model.storage_uri), ("tokenizerUri", model.tokenizer_uri)):
        if uri:
            try:
                parse_uri(uri, f"spec.model.{field}")
            except StorageUriError as e:
                messages.append(str(e))
    if model.format == "tensorrt-llm":
        if md.model_name in COMPONENTS:
            messages.append(
                f"spec.model.name {md.model_name!r} is taken by a model of the TensorRT-LLM repository "
                f"({', '.join(COMPONENTS)}); choose another name"
            )
        if not model.tokenizer_uri:
            messages.append("spec.model.tokenizerUri is required when spec.model.format is tensorrt-llm")
        if rt.max_batch_size < 1:
            messages.append("spec.runtime.maxBatchSize must be at least 1 for tensorrt-llm (in-flight batching)")
    return [Problem("InvalidRuntimeSpec", m) for m in messages]
