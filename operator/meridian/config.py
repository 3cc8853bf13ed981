"""Operator configuration from MERIDIAN_* environment variables (CLI flags override them)."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_IMAGES: dict[str, str] = {
    "tensorrt-llm": "nvcr.io/nvidia/tritonserver:25.10-trtllm-python-py3",
    "onnx": "nvcr.io/nvidia/tritonserver:25.10-py3",
    "pytorch": "nvcr.io/nvidia/tritonserver:25.10-py3",
    "tensorrt": "nvcr.io/nvidia/tritonserver:25.10-py3",
    "python": "nvcr.io/nvidia/tritonserver:25.10-py3",
}
# the endpoint picker of the Inference Extension release whose CRDs hack/build-tools.sh installs
EPP_IMAGE = "registry.k8s.io/gateway-api-inference-extension/epp:v1.5.0"


class Settings(BaseSettings):
    """Everything an operator deployment can tune; one instance is shared through kopf's memo."""

    model_config = SettingsConfigDict(env_prefix="MERIDIAN_", env_nested_delimiter="__")

    namespaces: list[str] = Field(
        default_factory=list, description="Namespaces to watch; empty watches the whole cluster."
    )
    images: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_IMAGES),
        description="Default Triton image per model format, used when spec.runtime.image is empty.",
    )
    downloader_image: str = Field(
        default="ghcr.io/meridian-dev/model-fetch:0.1.0",
        description="Image of the init container that fetches the model into the repository volume.",
    )
    endpoint_picker_image: str = Field(
        default=EPP_IMAGE,
        description="Image of the Inference Extension's endpoint picker, run per model with spec.routing.",
    )
    prometheus_url: str = Field(default="", description="Prometheus HTTP API for autoscaling metrics.")
    metrics_port: int = Field(default=8080, description="Port of the operator's own /metrics.")
    log_format: str = Field(default="json", description="json or console.")
    log_level: str = Field(default="INFO", description="Log level.")
    autoscale_interval_seconds: float = Field(default=15.0, description="Autoscaling evaluation period.")
    operator_namespace: str = Field(
        default="", description="Namespace the operator runs in; like kube-system, it is never written."
    )
    max_concurrent_reconciles: int = Field(
        default=8, description="Reconciles running at once; the rest wait their turn.", ge=1
    )
    peering: str = Field(default="", description="kopf peering name for HA; empty runs standalone.")
    peering_priority: int = Field(
        default=0, description="kopf peering priority (highest is active); 0 picks a random one per process."
    )

    @field_validator("images")
    @classmethod
    def _keep_default_images(cls, images: dict[str, str]) -> dict[str, str]:
        """Overriding one format's image keeps the defaults of the others."""
        return {**DEFAULT_IMAGES, **images}
