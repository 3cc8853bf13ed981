"""How the Triton container starts.

One GPU (or any single-model format): PID 1 is tritonserver itself.
With runtime.openai: PID 1 is Triton's OpenAI-compatible frontend, which embeds the server (one GPU).
tensorrt-llm on TP×PP > 1 GPUs: PID 1 is mpirun with one rank per GPU, in TensorRT-LLM's leader
mode. Rank 0 is the server clients see (HTTP, gRPC, metrics, every model); the other ranks load
only tensorrt_llm, with their endpoints off, and take part in the engine through MPI. mpirun stays
in the foreground until every rank has exited and ends the job if one dies, so the container lives
exactly as long as the server and a crashed rank restarts the pod. Each rank gets its own prefix
for the Python backend's shared-memory regions, which would otherwise collide in /dev/shm.
"""

from __future__ import annotations

from meridian.api.modeldeployment import ModelDeployment
from meridian.runtime.layout import (
    GRPC_PORT,
    HTTP_PORT,
    METRICS_PORT,
    MODEL_REPOSITORY,
    OPENAI_FRONTEND,
    OPENAI_PORT,
    TOKENIZER_DIR,
)
from meridian.runtime.trtllm import TENSORRT_LLM

__all__ = [
    "GRPC_PORT",
    "HTTP_PORT",
    "METRICS_PORT",
    "MODEL_REPOSITORY",
    "OPENAI_PORT",
    "metrics_port",
    "openai_args",
    "rank_args",
    "triton_command",
    "world_size",
]


def world_size(md: ModelDeployment) -> int:
    """MPI ranks of one replica: TP×PP for tensorrt-llm, otherwise a single server process."""
    rt = md.spec.runtime
    if md.spec.model.format != "tensorrt-llm":
        return 1
    return rt.tensor_parallel_size * rt.pipeline_parallel_size


def rank_args(md: ModelDeployment, rank: int) -> list[str]:
    """tritonserver arguments of one rank (rank 0 is also the whole server when there is one rank)."""
    trtllm = md.spec.model.format == "tensorrt-llm"
    args = [f"--model-repository={MODEL_REPOSITORY}"]
    if world_size(md) > 1:
        args.append(f"--id=rank{rank}")
    if rank == 0:
        args += [f"--http-port={HTTP_PORT}", f"--grpc-port={GRPC_PORT}", f"--metrics-port={METRICS_PORT}"]
    else:
        args += [
            "--model-control-mode=explicit",
            f"--load-model={TENSORRT_LLM}",
            "--allow-http=false",
            "--allow-grpc=false",
            "--allow-metrics=false",
        ]
    if trtllm:
        # Meridian writes complete configs; auto-complete would only slow the start of big models.
        # Single-model formats keep it: their inputs and outputs come from the model file or model.py.
        args += ["--disable-auto-complete-config", f"--backend-config=python,shm-region-prefix-name=prefix{rank}_"]
    return args + list(md.spec.runtime.extra_args)


def openai_args() -> list[str]:
    """Arguments of the OpenAI-compatible frontend: the repository Meridian prepared, the tokenizer
    it downloaded, TensorRT-LLM's request format, and the KServe frontends on their usual ports."""
    return [
        f"--model-repository={MODEL_REPOSITORY}",
        f"--tokenizer={TOKENIZER_DIR}",
        "--backend=tensorrtllm",
        f"--openai-port={OPENAI_PORT}",
        "--enable-kserve-frontends",
        f"--kserve-http-port={HTTP_PORT}",
        f"--kserve-grpc-port={GRPC_PORT}",
    ]


def metrics_port(md: ModelDeployment) -> int:
    """Where a pod serves Triton's Prometheus metrics: the metrics port, or the OpenAI frontend's."""
    return OPENAI_PORT if md.spec.runtime.openai.enabled else METRICS_PORT


def triton_command(md: ModelDeployment) -> tuple[list[str], list[str]]:
    """(command, args) of the Triton container. extraArgs go to every rank (log level, backend configs)."""
    if md.spec.runtime.openai.enabled:
        return ["python3", OPENAI_FRONTEND], openai_args()
    n = world_size(md)
    if n == 1:
        return ["tritonserver"], rank_args(md, 0)
    args = ["--allow-run-as-root"]
    for rank in range(n):
        if rank:
            args.append(":")
        args += ["-n", "1", "tritonserver", *rank_args(md, rank)]
    return ["mpirun"], args
