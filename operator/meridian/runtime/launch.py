"""How the Triton container starts."""

from __future__ import annotations

from meridian.api.modeldeployment import ModelDeployment

HTTP_PORT, GRPC_PORT, METRICS_PORT = 8000, 8001, 8002
MODEL_REPOSITORY = "/models"


def triton_command(md: ModelDeployment) -> tuple[list[str], list[str]]:
    """(command, args) of the Triton container."""
    args = [
        f"--model-repository={MODEL_REPOSITORY}",
        f"--http-port={HTTP_PORT}",
        f"--grpc-port={GRPC_PORT}",
        f"--metrics-port={METRICS_PORT}",
        *md.spec.runtime.extra_args,
    ]
    return ["tritonserver"], args
