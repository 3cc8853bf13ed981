"""ModelDeployment: one model served by Triton, in the regions its residency rules allow.

Field names, defaults and rules here are the user-facing contract (DESIGN §2); the CRD in crds/ is
generated from these classes, so a description here is what `kubectl explain` prints.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from meridian.api.base import ApiModel, Condition, LocalObjectReference, ObjectMeta, block, cel

ModelFormat = Literal["tensorrt-llm", "onnx", "pytorch", "tensorrt", "python"]
Batching = Literal["inflight", "static"]
ScalingMetric = Literal[
    "queueComputeRatio", "pendingRequests", "inFlightRequests", "kvCacheUtilization", "gpuUtilization", "requestRate"
]
STORAGE_SCHEMES = ("s3", "pvc", "hf", "oci")
Quantity = int | str
Tag = Annotated[str, StringConstraints(min_length=1, max_length=32)]
# a Region is named like any object: a DNS-1123 subdomain
REGION_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
RegionName = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=REGION_NAME)]


class ModelSource(ApiModel):
    """Which model Triton serves and where its files come from."""

    name: str | None = Field(
        default=None,
        description="Model name clients call in Triton's API. Defaults to metadata.name.",
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
    )
    format: ModelFormat = Field(
        description="Model format, which picks the Triton backend: tensorrt-llm, onnx, pytorch, tensorrt or python."
    )
    storage_uri: str = Field(
        description=(
            "Where the model files are: s3://bucket/path, pvc://<claim>/<path>, hf://<org>/<repo>[@revision] "
            "or oci://<image reference>. For tensorrt-llm this is the directory holding the built engine."
        ),
        max_length=2048,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.matches('^(s3|pvc|hf|oci)://.+')",
                    "storageUri must start with s3://, pvc://, hf:// or oci:// followed by a location",
                )
            ]
        },
    )
    storage_secret_ref: LocalObjectReference | None = Field(
        default=None,
        description="Secret with credentials for storageUri (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, HF_TOKEN).",
    )
    tokenizer_uri: str | None = Field(
        default=None,
        description="Tokenizer location (hf://org/repo[@rev], s3://, pvc://). Required for tensorrt-llm.",
        max_length=2048,
    )


class EnvVar(ApiModel):
    """An environment variable for the Triton container, as in a Pod spec."""

    name: str = Field(description="Variable name.", min_length=1)
    value: str | None = Field(default=None, description="Literal value.")
    value_from: dict[str, Any] | None = Field(
        default=None,
        description="Source for the value (secretKeyRef, configMapKeyRef, fieldRef), as in a Pod spec.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class OpenAIFrontend(ApiModel):
    """Triton's OpenAI-compatible frontend, in front of a TensorRT-LLM model."""

    enabled: bool = Field(
        default=False,
        description=(
            "Serve /v1/chat/completions, /v1/completions and /v1/models on port 9000 (status.endpoints.openai). "
            "The frontend embeds one Triton server: tensorrt-llm on one GPU per replica, no runtime.extraArgs. "
            "Its /health/ready and /metrics on port 9000 replace tritonserver's probes and metrics port; KServe "
            "v2 HTTP and gRPC stay on 8000 and 8001 when the image has the tritonfrontend package installed."
        ),
    )


class Runtime(ApiModel):
    """How Triton runs the model."""

    image: str = Field(default="", description="Triton image. Empty uses the operator's default for the format.")
    tensor_parallel_size: int = Field(default=1, ge=1, le=64, description="GPUs a layer is split over (TP).")
    pipeline_parallel_size: int = Field(default=1, ge=1, le=64, description="Pipeline stages (PP).")
    max_batch_size: int = Field(default=64, ge=0, le=4096, description="Largest batch Triton forms.")
    batching: Batching = Field(
        default="inflight",
        description="tensorrt-llm batching: inflight (inflight_fused_batching) or static (V1).",
    )
    kv_cache_free_gpu_mem_fraction: float = Field(
        default=0.9, ge=0.0, le=1.0, description="Fraction of free GPU memory the KV cache may take (0-1)."
    )
    streaming: bool = Field(default=True, description="Stream tokens back (Triton decoupled mode).")
    extra_args: list[str] = Field(
        default_factory=list, max_length=64, description="Extra tritonserver command-line arguments."
    )
    env: list[EnvVar] = Field(default_factory=list, max_length=128, description="Extra environment variables.")
    openai: OpenAIFrontend = block(OpenAIFrontend, "Triton's OpenAI-compatible frontend (tensorrt-llm).")


class GpuResources(ApiModel):
    """GPUs per replica and which kind."""

    count: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="GPUs per replica. Defaults to tensorParallelSize × pipelineParallelSize and must equal it.",
    )
    products: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="Acceptable GPU products (any of), matched against node label nvidia.com/gpu.product.",
    )
    min_memory_mi_b: int = Field(
        default=0,
        ge=0,
        alias="minMemoryMiB",
        description="Minimum GPU memory in MiB, matched against node label nvidia.com/gpu.memory.",
    )
    resource_name: str = Field(
        default="nvidia.com/gpu",
        max_length=253,
        description="Extended resource to request: nvidia.com/gpu or a MIG profile such as nvidia.com/mig-3g.40gb.",
    )


# a Kubernetes quantity, checked by the API server (CEL's quantity library, Kubernetes 1.29+) so
# that a typo is refused naming the field instead of surfacing later from the Deployment
QUANTITY_SCHEMA: dict[str, Any] = {
    "x-kubernetes-int-or-string": True,
    "x-kubernetes-validations": [
        cel(
            "type(self) == int ? self >= 0 : isQuantity(self) && !quantity(self).isLessThan(quantity('0'))",
            "must be a non-negative quantity such as 8, 500m or 64Gi",
        )
    ],
}


class Resources(ApiModel):
    """Compute for each replica."""

    gpu: GpuResources = block(GpuResources, "GPUs per replica.")
    cpu: Quantity = Field(
        default="8",
        description="CPU request and limit per replica.",
        json_schema_extra=QUANTITY_SCHEMA,
    )
    memory: Quantity = Field(
        default="64Gi",
        description="Memory request and limit per replica.",
        json_schema_extra=QUANTITY_SCHEMA,
    )
    shared_memory: Quantity = Field(
        default="8Gi",
        description="Size of /dev/shm (a memory-backed emptyDir).",
        json_schema_extra=QUANTITY_SCHEMA,
    )


class WakeOn(ApiModel):
    """Demand for a model that may have no pods, e.g. its request rate at the Gateway."""

    query: str = Field(
        min_length=1,
        max_length=4096,
        description=(
            'PromQL instant query, e.g. sum(rate(gateway_requests_total{model="llm"}[1m])). A vector is '
            "summed; an empty result is 0 (no series yet: no requests)."
        ),
    )
    threshold: float = Field(
        default=0.0, ge=0, description="The model is active while the query's value is above this (default: > 0)."
    )


class Autoscaling(ApiModel):
    """Scaling on Triton's own metrics. When enabled, spec.replicas is ignored, but for waking an idle model."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
                    "minReplicas must not exceed maxReplicas",
                    ".minReplicas",
                ),
                cel(
                    "!has(self.idleSeconds) || (has(self.minReplicas) && self.minReplicas == 0)",
                    "idleSeconds needs minReplicas 0: only a model allowed no replicas can go idle",
                    ".idleSeconds",
                ),
                cel(
                    "!has(self.wakeOn) || (has(self.minReplicas) && self.minReplicas == 0)",
                    "wakeOn needs minReplicas 0: only a model allowed no replicas sleeps and wakes",
                    ".wakeOn",
                ),
            ]
        }
    }

    enabled: bool = Field(default=False, description="Scale on the metric below instead of spec.replicas.")
    min_replicas: int = Field(default=1, ge=0, le=1000, description="Fewest replicas.")
    max_replicas: int = Field(default=8, ge=1, le=1000, description="Most replicas.")
    metric: ScalingMetric = Field(
        default="queueComputeRatio",
        description=(
            "Triton signal to scale on, per replica: queueComputeRatio (queue time ÷ compute time), "
            "pendingRequests (queued), inFlightRequests (running + queued, as KServe's concurrency target), "
            "kvCacheUtilization (0..1), gpuUtilization (0..1) or requestRate (per second)."
        ),
    )
    policy: Literal["meridian", "hpa"] = Field(
        default="meridian",
        description="Scaling rule: meridian (queueing model with trend forecast) or hpa (the Kubernetes HPA rule).",
    )
    target: float = Field(default=1.0, gt=0, description="Per-replica target value of the metric.")
    scale_up_stabilization_seconds: int = Field(
        default=0, ge=0, le=3600, description="Scale up to the lowest recommendation of this window."
    )
    scale_down_stabilization_seconds: int = Field(
        default=300, ge=0, le=3600, description="Scale down to the highest recommendation of this window."
    )
    idle_seconds: int | None = Field(
        default=None,
        ge=1,
        le=604800,
        description=(
            "With minReplicas 0: after this long without requests (none served by the pods, wakeOn's query "
            "at or below its threshold) the model is scaled to no replicas. Defaults to 300 when minReplicas is 0."
        ),
    )
    wake_on: WakeOn | None = Field(
        default=None,
        description=(
            "With minReplicas 0: the demand signal that needs no pod, a PromQL query asked of the operator's "
            "Prometheus (MERIDIAN_PROMETHEUS_URL). Above its threshold the model is active: an idle model wakes "
            "to one replica. Without it, only `kubectl scale` (a new spec.replicas) wakes an idle model."
        ),
    )


class RegionPreference(ApiModel):
    """One allowed region with its share of the replicas."""

    name: str = Field(description="Region name (a Region object).", min_length=1, max_length=253, pattern=REGION_NAME)
    weight: int = Field(default=1, ge=0, le=1000, description="Relative share of the replicas.")
    min_replicas: int = Field(default=0, ge=0, le=1000, description="Replicas this region always gets.")
    max_replicas: int | None = Field(default=None, ge=0, le=1000, description="Most replicas this region gets.")


class Failover(ApiModel):
    """Moving replicas out of a region that cannot run them."""

    enabled: bool = Field(default=True, description="Move unschedulable replicas to other qualifying regions.")
    unschedulable_seconds: int = Field(
        default=120, ge=0, le=86400, description="How long a replica may stay unschedulable before it moves."
    )


class Placement(ApiModel):
    """Where replicas may run."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "!has(self.regions) || !has(self.excludeRegions) || "
                    "self.regions.all(r, !(r.name in self.excludeRegions))",
                    "a region cannot be both in regions and excludeRegions",
                    ".excludeRegions",
                )
            ]
        }
    }

    residency: list[Tag] = Field(
        default_factory=list,
        max_length=16,
        description="Jurisdiction tags; a region qualifies only if it carries every one of them.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    regions: list[RegionPreference] = Field(
        default_factory=list,
        max_length=64,
        description="Allowed regions with weights. Empty allows every region that qualifies.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    exclude_regions: list[RegionName] = Field(
        default_factory=list,
        max_length=64,
        description="Regions never used.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    spread_across_zones: bool = Field(default=True, description="Spread a region's replicas over its zones.")
    failover: Failover = block(Failover, "Failover of unschedulable replicas.")


class Rollout(ApiModel):
    """Rolling update of a region's replicas."""

    max_surge: int = Field(default=1, ge=0, le=100, description="Extra replicas during an update.")
    max_unavailable: int = Field(default=0, ge=0, le=100, description="Replicas that may be down during an update.")


class GatewayReference(ApiModel):
    """The Gateway (gateway.networking.k8s.io) whose listener routes to the model."""

    name: str = Field(description="Gateway name.", min_length=1, max_length=253)
    namespace: str = Field(
        default="",
        max_length=63,
        description="Gateway namespace. Empty is the model's; another needs the listener's allowedRoutes to admit it.",
    )
    section_name: str = Field(
        default="", max_length=253, description="The Gateway listener to attach to. Empty attaches to every listener."
    )


class Routing(ApiModel):
    """Reach the model through the platform's Gateway, by the Gateway API Inference Extension."""

    gateway: GatewayReference = Field(description="The Gateway routing to the model.")
    hostnames: list[Annotated[str, StringConstraints(min_length=1, max_length=253)]] = Field(
        default_factory=list, max_length=16, description="Host names the route matches. Empty matches the listener's."
    )
    path: str = Field(
        default="/",
        max_length=1024,
        pattern=r"^/",
        description="Path prefix the route matches, such as /v1 or /llama. Requests keep their path.",
    )
    failure_mode: Literal["FailClose", "FailOpen"] = Field(
        default="FailClose",
        description=(
            "What the Gateway does when the endpoint picker does not answer: FailClose rejects the request, "
            "FailOpen sends it to any replica of the pool."
        ),
    )


class ModelDeploymentSpec(ApiModel):
    """Desired state of a ModelDeployment."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "!has(self.resources.gpu.count) || self.resources.gpu.count == "
                    "self.runtime.tensorParallelSize * self.runtime.pipelineParallelSize",
                    "resources.gpu.count must equal runtime.tensorParallelSize × runtime.pipelineParallelSize",
                    ".resources.gpu.count",
                ),
                cel(
                    "self.model.format != 'tensorrt-llm' || has(self.model.tokenizerUri)",
                    "model.tokenizerUri is required when model.format is tensorrt-llm",
                    ".model.tokenizerUri",
                ),
                cel(
                    "!has(self.runtime.openai) || !has(self.runtime.openai.enabled) || !self.runtime.openai.enabled"
                    " || (self.model.format == 'tensorrt-llm'"
                    " && self.runtime.tensorParallelSize * self.runtime.pipelineParallelSize == 1"
                    " && (!has(self.runtime.extraArgs) || size(self.runtime.extraArgs) == 0))",
                    "runtime.openai.enabled needs model.format tensorrt-llm, tensorParallelSize × "
                    "pipelineParallelSize = 1 and no runtime.extraArgs: the frontend embeds one Triton server "
                    "and takes no tritonserver flags",
                    ".runtime.openai.enabled",
                ),
                cel(
                    "!has(self.routing) || (has(self.runtime.openai) && has(self.runtime.openai.enabled)"
                    " && self.runtime.openai.enabled)",
                    "routing needs runtime.openai.enabled: the endpoint picker reads OpenAI requests and routes to "
                    "the frontend's port",
                    ".routing",
                ),
            ]
        }
    }

    model: ModelSource = Field(description="The model and where to fetch it.")
    runtime: Runtime = block(Runtime, "How Triton runs the model.")
    resources: Resources = block(Resources, "Compute per replica.")
    replicas: int = Field(
        default=1,
        ge=0,
        le=1000,
        description=(
            "Total replicas when autoscaling is off (the scale subresource). With autoscaling on it is ignored, "
            "except that changing it (kubectl scale) wakes a model idle at zero replicas."
        ),
    )
    autoscaling: Autoscaling = block(Autoscaling, "Autoscaling on Triton metrics.")
    placement: Placement = block(Placement, "Where replicas may run.")
    rollout: Rollout = block(Rollout, "Rolling update parameters.")
    paused: bool = Field(default=False, description="Stop reconciling; children stay as they are.")
    routing: Routing | None = Field(
        default=None,
        description=(
            "Route to the model from a Gateway through an InferencePool and its endpoint picker, which sends each "
            "request to the least loaded replica by Triton's TensorRT-LLM metrics. Needs the Gateway API and "
            "Inference Extension CRDs, and runtime.openai.enabled."
        ),
    )

    @property
    def gpus_per_replica(self) -> int:
        return self.resources.gpu.count or self.runtime.tensor_parallel_size * self.runtime.pipeline_parallel_size


class RegionStatus(ApiModel):
    """How one region is doing for this model."""

    name: str = Field(description="Region name.")
    desired_replicas: int = Field(default=0, description="Replicas planned here.")
    ready_replicas: int = Field(default=0, description="Replicas ready here.")
    unschedulable_replicas: int = Field(default=0, description="Replicas the scheduler cannot place here.")
    reason: str = Field(default="", description="Why this region got its replicas.")


class ResidencyRegion(ApiModel):
    """Pods running in one Region, proven from their nodes."""

    name: str = Field(description="Region selecting the pods' nodes.")
    pods: int = Field(default=0, description="Pods of this model bound to its nodes.")
    jurisdictions: list[str] = Field(default_factory=list, description="The Region's jurisdictions.")


class ResidencyViolation(ApiModel):
    """A pod on a node that proves nothing, or proves the model is somewhere it may not be."""

    pod: str = Field(description="Pod name.")
    node: str = Field(description="Node the pod is bound to.")
    region: str = Field(default="", description="The one Region selecting that node; empty if none or several.")
    reason: str = Field(description="What is wrong, e.g. 'region eri lacks EU'.")
    time: str | None = Field(
        default=None, description="When it was found (lastViolation only).", json_schema_extra={"format": "date-time"}
    )


class ResidencyStatus(ApiModel):
    """Where the model's pods actually run: each pod's node, the Region selecting it, its jurisdictions."""

    required: list[str] = Field(
        default_factory=list, description="Jurisdictions required: spec.placement.residency and the namespace label."
    )
    compliant: bool = Field(default=True, description="Every bound pod is on a node of one qualifying Region.")
    regions: list[ResidencyRegion] = Field(default_factory=list, description="Pods per Region, proven from nodes.")
    violations: list[ResidencyViolation] = Field(default_factory=list, description="Pods found where not allowed.")
    last_violation: ResidencyViolation | None = Field(
        default=None, description="The most recent violation found, kept after its pod was deleted: the evidence."
    )
    last_checked: str | None = Field(
        default=None,
        description="When the pods were last checked (rewritten on change, else at most every 5 minutes).",
        json_schema_extra={"format": "date-time"},
    )


class Endpoints(ApiModel):
    """Where clients reach the model."""

    http: str = Field(default="", description="HTTP/REST endpoint (KServe v2 protocol).")
    grpc: str = Field(default="", description="gRPC endpoint.")
    openai: str = Field(default="", description="OpenAI-compatible API base URL, when runtime.openai is enabled.")


class RoutingStatus(ApiModel):
    """The route from the Gateway and whether the Gateway took it."""

    gateway: str = Field(default="", description="The Gateway, as namespace/name.")
    http_route: str = Field(default="", description="The HTTPRoute Meridian keeps.")
    inference_pool: str = Field(default="", description="The InferencePool over the model's pods.")
    endpoint_picker: str = Field(default="", description="The endpoint picker's Service (gRPC, ext-proc).")
    accepted: str = Field(
        default="Unknown",
        description="True once the Gateway accepted the route and the pool, False if it refused one, else Unknown.",
    )
    endpoint_picker_ready: bool = Field(default=False, description="The endpoint picker's pod is ready.")
    message: str = Field(default="", description="What the Gateway said, or what it has not said yet.")


class AutoscalingStatus(ApiModel):
    """Last autoscaling evaluation."""

    metric: str = Field(default="", description="Metric evaluated.")
    current_value: float | None = Field(default=None, description="Average value per ready replica.")
    recommended_replicas: int | None = Field(default=None, description="Replicas the recommender asks for.")
    last_scale_time: str | None = Field(
        default=None, description="When the total last changed.", json_schema_extra={"format": "date-time"}
    )
    metric_problems: list[str] = Field(
        default_factory=list,
        description="Pods whose metrics could not be read at the last evaluation, and why (too large, too slow).",
    )
    idle: bool | None = Field(
        default=None,
        description=(
            "True while the model has no replicas on purpose: it served nothing for idleSeconds. Set with "
            "minReplicas 0 only."
        ),
    )
    idle_since: str | None = Field(
        default=None,
        description="When the model went idle (scaled to zero).",
        json_schema_extra={"format": "date-time"},
    )
    last_active_time: str | None = Field(
        default=None,
        description="Last evaluation that saw requests or the wake query above its threshold (minReplicas 0).",
        json_schema_extra={"format": "date-time"},
    )
    wake_value: float | None = Field(default=None, description="Value of spec.autoscaling.wakeOn.query last read.")
    wake_on: list[str] | None = Field(
        default=None,
        description="What wakes the model while idle: the wake query and its threshold, kubectl scale (minReplicas 0).",
    )
    idle_spec_replicas: int | None = Field(
        default=None,
        description="spec.replicas when the model went idle: `kubectl scale` to another value (1 or more) wakes it.",
    )


class RuntimeStatus(ApiModel):
    """What Triton itself reports, when a ready pod is reachable."""

    model_ready: bool | None = Field(default=None, description="Triton reports the model ready.")
    model_versions: list[str] = Field(default_factory=list, description="Model versions Triton serves.")
    platform: str = Field(default="", description="Backend or platform Triton reports for the model.")
    server_version: str = Field(default="", description="Triton server version.")


class ModelDeploymentStatus(ApiModel):
    """Observed state, written only by Meridian."""

    observed_generation: int | None = Field(default=None, description="Generation last reconciled.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, Reconciling, Stalled (kstatus), PlacementSatisfied, ResidencyCompliant.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    model_name: str = Field(default="", description="Model name clients call.")
    replicas: int = Field(default=0, description="Replicas that exist (scale subresource).")
    ready_replicas: int = Field(default=0, description="Replicas ready to serve.")
    desired_replicas: int = Field(default=0, description="Total replicas wanted now.")
    selector: str = Field(default="", description="Label selector of the pods (scale subresource).")
    region_summary: str = Field(default="", description="Replicas per region, e.g. gra=2,rbx=1.")
    regions: list[RegionStatus] = Field(default_factory=list, description="Per-region state.")
    endpoints: Endpoints | None = Field(default=None, description="Where clients reach the model.")
    residency: ResidencyStatus | None = Field(default=None, description="Where pods run, proven from their nodes.")
    autoscaling: AutoscalingStatus | None = Field(default=None, description="Last autoscaling evaluation.")
    routing: RoutingStatus | None = Field(default=None, description="The route in from the Gateway, with spec.routing.")
    runtime: RuntimeStatus | None = Field(default=None, description="What Triton reports.")


class ModelDeployment(ApiModel):
    """A model served on Triton across the regions it is allowed in."""

    api_version: str = Field(default="serving.meridian.dev/v1alpha1", description="API version.")
    kind: str = Field(default="ModelDeployment", description="Kind.")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard object metadata.")
    spec: ModelDeploymentSpec = Field(description="Desired state.")
    status: ModelDeploymentStatus = Field(default_factory=ModelDeploymentStatus, description="Observed state.")

    @property
    def model_name(self) -> str:
        return self.spec.model.name or self.metadata.name
