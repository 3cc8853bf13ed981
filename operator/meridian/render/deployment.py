"""The per-region Deployment: Triton pods pinned to one region's GPU nodes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meridian.api.modeldeployment import ModelDeployment
from meridian.config import Settings
from meridian.placement.plan import RegionTarget
from meridian.render.configmap import config_hash, config_items
from meridian.render.labels import ENGINE_LABEL, REGION_LABEL, TRITON_ENGINE, labels, metadata, selector
from meridian.render.names import config_map_name, label_value, regional_name
from meridian.render.reach import node_affinity
from meridian.runtime.fetch import init_containers
from meridian.runtime.launch import (
    GRPC_PORT,
    HTTP_PORT,
    METRICS_PORT,
    MODEL_REPOSITORY,
    OPENAI_PORT,
    triton_command,
)
from meridian.runtime.repository import model_repository
from meridian.runtime.storage import storage_volumes, triton_volume_mounts

ZONE_LABEL = "topology.kubernetes.io/zone"
CONFIG_HASH_ANNOTATION = "serving.meridian.dev/config-hash"


def quantity(value: int | str) -> str:
    return str(value)


def _probes(md: ModelDeployment) -> dict[str, Any]:
    if md.spec.runtime.openai.enabled:  # the frontend's own endpoints: KServe's may not be there
        ready: dict[str, Any] = {"httpGet": {"path": "/health/ready", "port": "openai"}}
        live: dict[str, Any] = {"tcpSocket": {"port": "openai"}}
    else:
        ready = {"httpGet": {"path": "/v2/health/ready", "port": "http"}}
        live = {"httpGet": {"path": "/v2/health/live", "port": "http"}}
    return {
        # engine loads of large models take many minutes; the startup probe allows 30 before restarting
        "startupProbe": {**ready, "periodSeconds": 10, "failureThreshold": 180, "timeoutSeconds": 5},
        "readinessProbe": {**ready, "periodSeconds": 5, "failureThreshold": 3, "timeoutSeconds": 5},
        "livenessProbe": {**live, "periodSeconds": 10, "failureThreshold": 6, "timeoutSeconds": 5},
    }


def container_ports(md: ModelDeployment) -> list[dict[str, Any]]:
    """KServe v2 HTTP and gRPC, and Triton's metrics port or, with the OpenAI frontend, its port
    (which serves the metrics then)."""
    third = ("openai", OPENAI_PORT) if md.spec.runtime.openai.enabled else ("metrics", METRICS_PORT)
    return [
        {"name": name, "containerPort": port, "protocol": "TCP"}
        for name, port in (("http", HTTP_PORT), ("grpc", GRPC_PORT), third)
    ]


def triton_image(md: ModelDeployment, settings: Settings) -> str:
    return md.spec.runtime.image or settings.images[md.spec.model.format]


def _triton_container(md: ModelDeployment, settings: Settings, files: Mapping[str, str]) -> dict[str, Any]:
    spec = md.spec
    gpus = spec.gpus_per_replica
    command, args = triton_command(md)
    res = spec.resources
    limits = {res.gpu.resource_name: str(gpus), "cpu": quantity(res.cpu), "memory": quantity(res.memory)}
    mounts = (
        [
            {"name": "model-repository", "mountPath": MODEL_REPOSITORY},
            {"name": "dshm", "mountPath": "/dev/shm"},
        ]
        + [
            {
                "name": "repository-config",
                "mountPath": f"{MODEL_REPOSITORY}/{item['path']}",
                "subPath": item["key"],
            }
            for item in config_items(files)
        ]
        + triton_volume_mounts(md)
    )
    container: dict[str, Any] = {
        "name": "triton",
        "image": triton_image(md, settings),
        "command": command,
        "args": args,
        "ports": container_ports(md),
        "resources": {"limits": limits, "requests": dict(limits)},
        "volumeMounts": mounts,
        # Triton's own log tail becomes the termination message, which reconcile explains
        "terminationMessagePolicy": "FallbackToLogsOnError",
        **_probes(md),
    }
    if spec.runtime.env:
        container["env"] = [e.wire() for e in spec.runtime.env]
    return container


def deployment(
    md: ModelDeployment, target: RegionTarget, settings: Settings, files: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """`files`: the model repository, when the caller already generated it for this reconcile."""
    files = model_repository(md) if files is None else files
    spec = md.spec
    name = regional_name(md.metadata.name, target.region)
    pod_labels = labels(md, target.region)
    if spec.routing is not None:  # the InferencePool selects these, and its picker reads them as Triton's
        pod_labels[ENGINE_LABEL] = TRITON_ENGINE
    match = {**selector(md), REGION_LABEL: label_value(target.region)}
    pod_spec: dict[str, Any] = {
        "initContainers": init_containers(md, settings.downloader_image, triton_image(md, settings)),
        "containers": [_triton_container(md, settings, files)],
        "tolerations": [{"key": spec.resources.gpu.resource_name, "operator": "Exists", "effect": "NoSchedule"}],
        "volumes": [
            {"name": "model-repository", "emptyDir": {}},
            {
                "name": "dshm",
                "emptyDir": {"medium": "Memory", "sizeLimit": quantity(spec.resources.shared_memory)},
            },
            {"name": "repository-config", "configMap": {"name": config_map_name(md.metadata.name)}},
            *storage_volumes(md),
        ],
        "terminationGracePeriodSeconds": 60,
    }
    affinity = node_affinity(target.node_selector, spec.resources.gpu)
    if affinity:
        pod_spec["affinity"] = affinity
    if spec.placement.spread_across_zones:
        pod_spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": ZONE_LABEL,
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": match},
            }
        ]
    if not pod_spec["initContainers"]:
        del pod_spec["initContainers"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(md, name, target.region),
        "spec": {
            "replicas": target.replicas,
            "selector": {"matchLabels": match},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {
                    "maxSurge": spec.rollout.max_surge,
                    "maxUnavailable": spec.rollout.max_unavailable,
                },
            },
            "template": {
                "metadata": {"labels": pod_labels, "annotations": {CONFIG_HASH_ANNOTATION: config_hash(files)}},
                "spec": pod_spec,
            },
        },
    }
