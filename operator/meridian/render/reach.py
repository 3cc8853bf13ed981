"""How a region is reached: the single place that knows it (DESIGN §6).

Inside one cluster, a region is nodes: required node affinity to its selector. Behind Karmada, a
region is also member clusters (Region.spec.clusters): each regional workload gets a PropagationPolicy
pinned to those clusters by name AND by a label selector on every jurisdiction the model requires,
so Karmada's own scheduler checks residency a second time; the shared objects (model repository
ConfigMap, model Service, PDB) go to the union of the placed regions' clusters under the same
selector. Conflicts abort instead of overwriting, and no policy asks for Karmada's failover: moves
are Meridian's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from meridian.api.modeldeployment import GpuResources, ModelDeployment
from meridian.api.region import Region
from meridian.placement.plan import Plan
from meridian.placement.types import Problem
from meridian.render.labels import REGION_LABEL, metadata
from meridian.render.names import picker_name, regional_name

GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_MEMORY_LABEL = "nvidia.com/gpu.memory"
# Labels a member Cluster carries in Karmada, set by whoever joins it: one per jurisdiction it
# satisfies (value "true"), and its country
JURISDICTION_LABEL_PREFIX = "jurisdiction.serving.meridian.dev/"
COUNTRY_LABEL = "serving.meridian.dev/country"
PROPAGATION_API = "policy.karmada.io/v1alpha1"
PROPAGATED_KINDS = ("Deployment", "Service", "ConfigMap", "PodDisruptionBudget")
CLUSTER_PROXY = "/apis/cluster.karmada.io/v1alpha1/clusters/{}/proxy"  # a member's API, through Karmada


def node_affinity(region_selector: Mapping[str, str], gpu: GpuResources) -> dict[str, Any]:
    """Required node affinity: the region's labels, any of the GPU products, minimum GPU memory."""
    exprs: list[dict[str, Any]] = [
        {"key": k, "operator": "In", "values": [v]} for k, v in sorted(region_selector.items())
    ]
    if gpu.products:
        exprs.append({"key": GPU_PRODUCT_LABEL, "operator": "In", "values": list(gpu.products)})
    if gpu.min_memory_mi_b > 0:
        exprs.append({"key": GPU_MEMORY_LABEL, "operator": "Gt", "values": [str(gpu.min_memory_mi_b - 1)]})
    if not exprs:
        return {}
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": exprs}]}
        }
    }


def jurisdiction_labels(country: str, jurisdictions: Sequence[str]) -> dict[str, str]:
    """The labels of a member Cluster that satisfies these jurisdictions."""
    return {COUNTRY_LABEL: country, **{f"{JURISDICTION_LABEL_PREFIX}{j}": "true" for j in sorted(jurisdictions)}}


def _selector(kind: dict[str, Any]) -> dict[str, str]:
    return {"apiVersion": kind["apiVersion"], "kind": kind["kind"], "name": kind["metadata"]["name"]}


def _policy(
    md: ModelDeployment,
    name: str,
    region: str | None,
    objects: Sequence[dict[str, Any]],
    clusters: Sequence[str],
    required: Sequence[str],
) -> dict[str, Any]:
    affinity: dict[str, Any] = {"clusterNames": sorted(clusters)}
    if required:
        affinity["labelSelector"] = {
            "matchLabels": {f"{JURISDICTION_LABEL_PREFIX}{j}": "true" for j in sorted(required)}
        }
    scheduling: dict[str, Any] = {"replicaSchedulingType": "Duplicated"}
    if region is not None and len(clusters) > 1:  # a region of several clusters shares its replicas out evenly
        weights = [{"targetCluster": {"clusterNames": [c]}, "weight": 1} for c in sorted(clusters)]
        scheduling = {
            "replicaSchedulingType": "Divided",
            "replicaDivisionPreference": "Weighted",
            "weightPreference": {"staticWeightList": weights},
        }
    return {
        "apiVersion": PROPAGATION_API,
        "kind": "PropagationPolicy",
        "metadata": metadata(md, name, region),
        "spec": {
            "resourceSelectors": [_selector(o) for o in objects],
            "conflictResolution": "Abort",
            "placement": {"clusterAffinity": affinity, "replicaScheduling": scheduling},
        },
    }


def propagation_policies(
    md: ModelDeployment,
    plan: Plan,
    regions: Mapping[str, Region],
    children: Sequence[dict[str, Any]],
    required: Sequence[str],
) -> list[dict[str, Any]]:
    """PropagationPolicies for the children of a plan whose regions are member clusters; none when
    every region is reached as nodes. A region not in regions is not propagated anywhere."""
    picker = picker_name(md.metadata.name)
    shared = [
        c
        for c in children
        if c["kind"] in PROPAGATED_KINDS
        and REGION_LABEL not in c["metadata"].get("labels", {})
        and c["metadata"]["name"] != picker  # the endpoint picker is not propagated (yet)
    ]
    out: list[dict[str, Any]] = []
    union: set[str] = set()
    for target in plan.targets:
        found = regions.get(target.region)
        clusters = found.spec.clusters if found else None
        name = regional_name(md.metadata.name, target.region)
        objects = [c for c in children if c["kind"] in ("Deployment", "Service") and c["metadata"]["name"] == name]
        if not clusters or not objects:
            continue
        union.update(clusters)
        out.append(_policy(md, name, target.region, objects, clusters, required))
    if union and shared:
        out.insert(0, _policy(md, md.metadata.name, None, shared, sorted(union), required))
    return out


def karmada_problems(plan: Plan, regions: Mapping[str, Region], unserved: frozenset[str]) -> list[Problem]:
    """A plan that reaches member clusters while the API server does not serve PropagationPolicy:
    Meridian runs against a cluster, not the Karmada API server, and cannot propagate anything."""
    named = sorted(t.region for t in plan.targets if (r := regions.get(t.region)) is not None and r.spec.clusters)
    if not named or "PropagationPolicy" not in unserved:
        return []
    return [
        Problem(
            "KarmadaUnavailable",
            f"region {', '.join(named)} is reached as Karmada member clusters (spec.clusters), but this API server "
            f"does not serve PropagationPolicy ({PROPAGATION_API}): run Meridian against the Karmada API server, "
            "or remove spec.clusters from the Region",
        )
    ]
