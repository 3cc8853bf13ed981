"""The way in from the user's Gateway (DESIGN §8): an InferencePool over the model's pods, the
endpoint picker that chooses a pod per request, and an HTTPRoute from the Gateway to the pool.

The picker reads Triton's TensorRT-LLM metrics (waiting and scheduled requests, KV-cache use) from
each pod's OpenAI frontend, so routing needs `runtime.openai.enabled` (a CEL rule says so). It sees
every prompt, so it runs only on nodes of the Regions the model's replicas are placed in: its pod
is no less bound by the model's residency than the model's own.
"""

from __future__ import annotations

from typing import Any

import yaml

from meridian.api.modeldeployment import ModelDeployment
from meridian.config import Settings
from meridian.placement.plan import Plan
from meridian.render import names
from meridian.render.labels import ENGINE_LABEL, MANAGED_BY, TRITON_ENGINE, metadata, selector
from meridian.render.names import label_value, model_service_name
from meridian.runtime.launch import OPENAI_PORT

POOL_API = "inference.networking.k8s.io/v1"
ROUTE_API = "gateway.networking.k8s.io/v1"
PICKER_LABEL = "serving.meridian.dev/endpoint-picker"
EXT_PROC_PORT, HEALTH_PORT, PICKER_METRICS_PORT = 9002, 9003, 9090
CONFIG_FILE = "default-plugins.yaml"


def pool_name(md: ModelDeployment) -> str:
    return model_service_name(md.metadata.name)


def picker_name(md: ModelDeployment) -> str:
    """ServiceAccount, Role, RoleBinding, ConfigMap, Deployment and Service of the picker."""
    return names.picker_name(md.metadata.name)


def picker_config() -> str:
    """The picker's scheduling: least queue, least KV-cache use, warm prefix cache, as its chart sets it.
    Triton's metric names come from the picker's built-in engine config, chosen by `defaultEngine`:
    v1.5.0 refuses to start with the older --total-queued-requests-metric flags its chart still passes."""
    config = {
        "apiVersion": "inference.networking.x-k8s.io/v1alpha1",
        "kind": "EndpointPickerConfig",
        "plugins": [
            {"type": "queue-scorer"},
            {"type": "kv-cache-utilization-scorer"},
            {"type": "prefix-cache-scorer"},
            {"type": "metrics-data-source", "parameters": {"scheme": "http", "path": "/metrics"}},
            {"type": "core-metrics-extractor", "parameters": {"defaultEngine": TRITON_ENGINE}},
        ],
        "schedulingProfiles": [
            {
                "name": "default",
                "plugins": [
                    {"pluginRef": "queue-scorer", "weight": 2},
                    {"pluginRef": "kv-cache-utilization-scorer", "weight": 2},
                    {"pluginRef": "prefix-cache-scorer", "weight": 3},
                ],
            }
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


def routing_children(md: ModelDeployment, plan: Plan, settings: Settings) -> list[dict[str, Any]]:
    """Every object of the route in, in apply order: the picker's identity and rights, its
    configuration, the picker, the pool naming it, and the route to the pool."""
    routing = md.spec.routing
    if routing is None:
        return []
    ns, name = md.metadata.namespace, picker_name(md)
    own = {PICKER_LABEL: label_value(md.metadata.name)}
    rules = [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {
            "apiGroups": ["inference.networking.k8s.io"],
            "resources": ["inferencepools"],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": ["inference.networking.x-k8s.io"],
            "resources": ["inferenceobjectives", "inferencemodelrewrites"],
            "verbs": ["get", "list", "watch"],
        },
    ]
    out: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata(md, name)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": metadata(md, name), "rules": rules},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": metadata(md, name),
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(md, name),
            "data": {CONFIG_FILE: picker_config()},
        },
        picker_deployment(md, plan, settings, own),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(md, name),
            "spec": {
                "selector": own,
                "ports": [
                    {"name": "grpc-ext-proc", "port": EXT_PROC_PORT, "targetPort": "grpc", "appProtocol": "http2"},
                    {"name": "http-metrics", "port": PICKER_METRICS_PORT, "targetPort": "metrics"},
                ],
            },
        },
        {
            "apiVersion": POOL_API,
            "kind": "InferencePool",
            "metadata": metadata(md, pool_name(md)),
            "spec": {
                "selector": {"matchLabels": {**selector(md), ENGINE_LABEL: TRITON_ENGINE}},
                "targetPorts": [{"number": OPENAI_PORT}],
                "appProtocol": "http",
                "endpointPickerRef": {
                    "kind": "Service",
                    "name": name,
                    "port": {"number": EXT_PROC_PORT},
                    "failureMode": routing.failure_mode,
                },
            },
        },
        http_route(md),
    ]
    return out


def gateway_parent(md: ModelDeployment) -> dict[str, Any]:
    gw = md.spec.routing.gateway if md.spec.routing else None
    assert gw is not None
    parent: dict[str, Any] = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gw.name}
    if gw.namespace:
        parent["namespace"] = gw.namespace
    if gw.section_name:
        parent["sectionName"] = gw.section_name
    return parent


def http_route(md: ModelDeployment) -> dict[str, Any]:
    routing = md.spec.routing
    assert routing is not None
    spec: dict[str, Any] = {
        "parentRefs": [gateway_parent(md)],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": routing.path}}],
                "backendRefs": [
                    {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": pool_name(md)}
                ],
            }
        ],
    }
    if routing.hostnames:
        spec["hostnames"] = list(routing.hostnames)
    return {"apiVersion": ROUTE_API, "kind": "HTTPRoute", "metadata": metadata(md, pool_name(md)), "spec": spec}


def picker_deployment(md: ModelDeployment, plan: Plan, settings: Settings, own: dict[str, str]) -> dict[str, Any]:
    """One picker (its scorers keep per-pod state, so its chart runs one and replaces it whole),
    on a node of a Region the model is placed in; none while the model has no Region."""
    name = picker_name(md)
    placed = sorted((t for t in plan.targets if t.replicas > 0), key=lambda t: t.region)
    terms = [
        {"matchExpressions": [{"key": k, "operator": "In", "values": [v]} for k, v in sorted(t.node_selector.items())]}
        for t in placed
    ]
    args = [
        "--pool-name",
        pool_name(md),
        "--pool-namespace",
        md.metadata.namespace,
        "--pool-group",
        "inference.networking.k8s.io",
        "--zap-encoder",
        "json",
        "--config-file",
        f"/config/{CONFIG_FILE}",
        "--tracing=false",
    ]
    grpc_probe = {"grpc": {"port": HEALTH_PORT, "service": "inference-extension"}}
    pod: dict[str, Any] = {
        "serviceAccountName": name,
        "terminationGracePeriodSeconds": 130,
        "containers": [
            {
                "name": "epp",
                "image": settings.endpoint_picker_image,
                "args": args,
                "ports": [
                    {"name": "grpc", "containerPort": EXT_PROC_PORT},
                    {"name": "grpc-health", "containerPort": HEALTH_PORT},
                    {"name": "metrics", "containerPort": PICKER_METRICS_PORT},
                ],
                "livenessProbe": {**grpc_probe, "initialDelaySeconds": 5, "periodSeconds": 10},
                "readinessProbe": {**grpc_probe, "periodSeconds": 2},
                "env": [
                    {"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                ],
                "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
                "volumeMounts": [{"name": "config", "mountPath": "/config"}],
            }
        ],
        "volumes": [{"name": "config", "configMap": {"name": name}}],
    }
    if terms and all(term["matchExpressions"] for term in terms):
        pod["affinity"] = {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(md, name),
        "spec": {
            "replicas": 1 if placed else 0,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": own},
            "template": {"metadata": {"labels": {**own, MANAGED_BY: "meridian"}}, "spec": pod},
        },
    }
