"""Residency proven from where pods run: pod → node → the one Region selecting it → its jurisdictions.

The plan says where replicas should go; only this says where they are. A pod is compliant when its
node is selected by exactly one Region and that Region carries every required jurisdiction. Pods
not yet bound to a node run nowhere and prove nothing either way. The same proof backs the
`ResidencyCompliant` condition, `status.residency` and `meridian residency check`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meridian.api.region import Region
from meridian.placement.claims import NodeClaims

NAMESPACE_RESIDENCY_LABEL = "serving.meridian.dev/residency"


@dataclass(frozen=True)
class PodPlacement:
    """Where one pod runs and whether that is allowed; `why` is empty when it is."""

    pod: str
    node: str
    region: str  # "" when no single Region selects the node
    jurisdictions: tuple[str, ...]
    why: str = ""

    @property
    def ok(self) -> bool:
        return not self.why


@dataclass(frozen=True)
class Proof:
    required: tuple[str, ...]
    placements: tuple[PodPlacement, ...]

    @property
    def violations(self) -> tuple[PodPlacement, ...]:
        return tuple(p for p in self.placements if not p.ok)

    @property
    def compliant(self) -> bool:
        return not self.violations

    def by_region(self) -> dict[str, int]:
        return dict(sorted(Counter(p.region for p in self.placements if p.ok).items()))

    @property
    def message(self) -> str:
        if not self.required:
            return "no residency required"
        bad = self.violations
        if bad:
            shown = "; ".join(f"pod {v.pod} on node {v.node}: {v.why}" for v in bad[:5])
            more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
            return f"{len(bad)} pod(s) outside {', '.join(self.required)}: {shown}{more}"
        where = ", ".join(f"{r}={n}" for r, n in self.by_region().items()) or "no pod running yet"
        return f"every running pod is on a node of a region carrying {', '.join(self.required)}: {where}"


def required_tags(residency: Iterable[str], namespace_tag: str) -> tuple[str, ...]:
    """What the model must satisfy: its own residency plus its namespace's label."""
    return tuple(sorted(set(residency) | ({namespace_tag} if namespace_tag else set())))


def bound_node(pod: Mapping[str, Any]) -> str:
    """The node a pod runs (or ran) on; finished pods run nowhere any more."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return ""
    return str((pod.get("spec") or {}).get("nodeName") or "")


def place(
    pod: str, node: str, required: Sequence[str], claims: NodeClaims, regions: Mapping[str, Region]
) -> PodPlacement:
    owners = claims.owners(node)
    if not owners:
        return PodPlacement(pod, node, "", (), "no Region selects this node")
    if len(owners) > 1:
        return PodPlacement(pod, node, "", (), f"node is selected by several Regions ({', '.join(owners)})")
    region = regions[owners[0]]
    tags = tuple(sorted(region.spec.jurisdictions))
    missing = sorted(set(required) - set(tags))
    if missing:
        return PodPlacement(pod, node, region.name, tags, f"region {region.name} lacks {', '.join(missing)}")
    return PodPlacement(pod, node, region.name, tags)


def prove(
    required: Sequence[str],
    pods: Iterable[Mapping[str, Any]],
    claims: NodeClaims,
    regions: Sequence[Region],
) -> Proof:
    by_name = {r.name: r for r in regions}
    placements = []
    for pod in pods:
        node = bound_node(pod)
        if node:
            placements.append(place(pod["metadata"]["name"], node, required, claims, by_name))
    ordered = tuple(sorted(placements, key=lambda p: p.pod))
    if not required:  # nothing to violate: report where pods run, all of them allowed
        ordered = tuple(PodPlacement(p.pod, p.node, p.region, p.jurisdictions) for p in ordered)
    return Proof(tuple(required), ordered)
