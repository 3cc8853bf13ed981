"""What must stop running now, decided from what is live, whatever the planner returns.

A live Deployment in a region the model may no longer use (a jurisdiction lost, excluded, dropped
from the allow list, an untrusted Region, a namespace label the spec does not honour) is scaled to
zero and deleted; a pod on a node that proves nothing or proves a violation is deleted at once.
Stalled plans included: a plan that cannot place anything must still remove what is forbidden.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from meridian.api.modeldeployment import ModelDeployment
from meridian.api.region import Region
from meridian.placement.types import ANY_REGION
from meridian.render.labels import REGION_LABEL
from meridian.sync.decision import Eviction
from meridian.sync.residency import Proof
from meridian.sync.world import CLUSTER


def untrusted_regions(conflicts: Mapping[str, tuple[str, str]]) -> dict[str, str]:
    """Region → why it cannot be trusted: a node it selects is also selected by another Region."""
    return {r: f"shares node {node} with Region {other}" for r, (node, other) in conflicts.items()}


def namespace_mismatch(md: ModelDeployment, namespace_tag: str) -> str:
    """Why the namespace's residency label forbids this model everywhere, or ""."""
    if not namespace_tag or namespace_tag in md.spec.placement.residency:
        return ""
    have = ", ".join(md.spec.placement.residency) or "nothing"
    return (
        f"namespace {md.metadata.namespace} is labelled serving.meridian.dev/residency={namespace_tag} "
        f"but spec.placement.residency lists {have}"
    )


def forbidden_reason(
    md: ModelDeployment,
    region: str,
    regions: Mapping[str, Region],
    untrusted: Mapping[str, str],
    namespace_tag: str,
) -> str:
    """Why `region` may not run this model at all, or "" when it may (capacity aside)."""
    placement = md.spec.placement
    required = set(placement.residency) | ({namespace_tag} if namespace_tag else set())
    mismatch = namespace_mismatch(md, namespace_tag)
    if mismatch:
        return mismatch
    if region == ANY_REGION:
        return f"runs on any node, but residency {', '.join(sorted(required))} is required" if required else ""
    r = regions.get(region)
    if r is None:
        return "has no Region object, so residency cannot be verified" if required else ""
    missing = sorted(required - set(r.spec.jurisdictions))
    if missing:
        return f"lacks jurisdiction{'' if len(missing) == 1 else 's'} {', '.join(missing)}"
    if region in untrusted:
        return untrusted[region]
    if region in placement.exclude_regions:
        return "is in spec.placement.excludeRegions"
    allowed = {p.name for p in placement.regions}
    if allowed and region not in allowed:
        return "is not in spec.placement.regions"
    return ""


def region_of_child(obj: Mapping[str, Any], names: Mapping[str, str]) -> str:
    """The Region a child serves, from its region label; `names` maps label values back to Region
    names (label values of long names are hashed)."""
    value = str(((obj.get("metadata") or {}).get("labels") or {}).get(REGION_LABEL, ""))
    return names.get(value, value)


def evictions(
    md: ModelDeployment,
    deployments: Sequence[Mapping[str, Any]],
    proof: Proof,
    pods: Sequence[Mapping[str, Any]],
    regions: Sequence[Region],
    untrusted: Mapping[str, str],
    namespace_tag: str,
    names: Mapping[str, str],
) -> list[Eviction]:
    by_name = {r.name: r for r in regions}
    out: list[Eviction] = []
    for d in sorted(deployments, key=lambda d: d["metadata"]["name"]):
        region = region_of_child(d, names)
        why = forbidden_reason(md, region, by_name, untrusted, namespace_tag)
        if why:
            out.append(Eviction("Deployment", d["metadata"]["name"], region, why))
    by_pod = {p["metadata"]["name"]: p for p in pods}
    for v in proof.violations:
        pod = by_pod.get(v.pod, {})
        if not _dying_now(pod):  # the region it was meant for, when its node belongs to no single Region
            where = v.region or region_of_child(pod, names)
            out.append(Eviction("Pod", v.pod, where, v.why, cluster=str(pod.get(CLUSTER) or "")))
    return out


def _dying_now(pod: Mapping[str, Any]) -> bool:
    """Already being deleted with no grace left to cut short."""
    meta = pod.get("metadata") or {}
    return bool(meta.get("deletionTimestamp")) and int(meta.get("deletionGracePeriodSeconds") or 0) == 0
