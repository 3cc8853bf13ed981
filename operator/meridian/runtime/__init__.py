"""Triton / TensorRT-LLM knowledge: model repository, launch command, model fetch (pure)."""
