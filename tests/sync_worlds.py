"""Small builders of Worlds for the pure pass: Regions, nodes, owned Deployments and pods as the API
server returns them, without a cluster."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from meridian.api.modeldeployment import ModelDeployment
from meridian.api.region import Region
from meridian.placement.claims import node_claims
from meridian.render.labels import MD_LABEL, REGION_LABEL
from meridian.render.names import regional_name
from meridian.sync import World

NODE_LABEL = "node-restriction.kubernetes.io/region"
UID = "uid-llm"


def model(name: str = "llm", namespace: str = "bank", **spec: Any) -> ModelDeployment:
    body: dict[str, Any] = {
        "model": {"format": "onnx", "storageUri": "s3://models/m"},
        "resources": {"cpu": "1", "memory": "1Gi"},
        "replicas": 2,
        "placement": {"residency": ["EU"]},
    }
    body.update(spec)
    return ModelDeployment.model_validate(
        {"metadata": {"name": name, "namespace": namespace, "uid": UID, "generation": 1}, "spec": body}
    )


def region(name: str, tags: Sequence[str], selector: Mapping[str, str] | None = None) -> Region:
    spec: dict[str, Any] = {"country": "FR", "jurisdictions": list(tags)}
    if selector is not None:
        spec["nodeSelector"] = dict(selector)
    return Region.model_validate({"metadata": {"name": name}, "spec": spec})


def deployment(md: ModelDeployment, region_name: str, replicas: int, ready: int | None = None) -> dict[str, Any]:
    ready = replicas if ready is None else ready
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": regional_name(md.metadata.name, region_name),
            "namespace": md.metadata.namespace,
            "labels": {MD_LABEL: md.metadata.name, REGION_LABEL: region_name},
            "ownerReferences": [{"kind": "ModelDeployment", "name": md.metadata.name, "uid": UID, "controller": True}],
            "generation": 1,
        },
        "spec": {"replicas": replicas},
        "status": {"observedGeneration": 1, "replicas": replicas, "readyReplicas": ready, "updatedReplicas": replicas},
    }


def pod(name: str, region_name: str, node: str = "", **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {MD_LABEL: "llm", REGION_LABEL: region_name},
            "ownerReferences": [{"kind": "ReplicaSet", "name": f"rs-{region_name}", "controller": True}],
            **meta,
        },
        "spec": {"nodeName": node} if node else {},
        "status": {"phase": "Running" if node else "Pending"},
    }


def world(
    md: ModelDeployment,
    regions: Sequence[Region],
    nodes: Mapping[str, Mapping[str, str]],
    deployments: Sequence[Mapping[str, Any]] = (),
    pods: Sequence[Mapping[str, Any]] = (),
    **kw: Any,
) -> World:
    owned = {("Deployment", d["metadata"]["name"]): d for d in deployments}
    return World(
        model=md,
        regions=tuple(regions),
        owned=owned,
        pods=tuple(pods),
        claims=node_claims(regions, nodes.items()),
        now=1e9,
        **kw,
    )


def nodes_of(**regions: int) -> dict[str, dict[str, str]]:
    """`gra=2` → nodes gra-0, gra-1 labelled for Region gra."""
    return {f"{r}-{i}": {NODE_LABEL: r} for r, n in regions.items() for i in range(n)}
