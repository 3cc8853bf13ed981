"""What runs now, read from the children: the input the planner and the status need."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from meridian.placement.plan import Hold, Observed
from meridian.render.labels import REGION_LABEL
from meridian.sync.pending import is_capacity, unschedulable_condition


@dataclass(frozen=True)
class RegionObservation:
    replicas: int = 0
    ready: int = 0
    unschedulable: int = 0
    unschedulable_since: float | None = None
    spec_replicas: int = 0
    rolled_out: bool = True


@dataclass(frozen=True)
class Observation:
    regions: Mapping[str, RegionObservation] = field(default_factory=dict)

    @property
    def replicas(self) -> int:
        return sum(r.replicas for r in self.regions.values())

    @property
    def ready(self) -> int:
        return sum(r.ready for r in self.regions.values())

    @property
    def rolled_out(self) -> bool:
        return all(r.rolled_out for r in self.regions.values())

    def for_planner(
        self, now: float, held: Mapping[str, Hold] | None = None, promised: Mapping[str, int] | None = None
    ) -> Observed:
        return Observed(
            replicas={n: r.spec_replicas for n, r in self.regions.items()},
            unschedulable={n: r.unschedulable for n, r in self.regions.items() if r.unschedulable},
            unschedulable_since={
                n: r.unschedulable_since for n, r in self.regions.items() if r.unschedulable_since is not None
            },
            now=now,
            ready={n: r.ready for n, r in self.regions.items()},
            held=dict(held or {}),
            promised=dict(promised or {}),
        )


def timestamp(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def pod_ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def observe(
    deployments: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    region_names: Mapping[str, str] | None = None,
    unready: Mapping[str, int] | None = None,
    unreachable: frozenset[str] = frozenset(),
) -> Observation:
    """`region_names` maps region label values back to Region names (long names are hashed);
    `unready` counts each region's nodes not Ready, by label value (see `is_capacity`).
    `unreachable`: Regions whose member clusters do not answer. Karmada keeps reporting the last
    status it heard from them, so their replicas count as neither running nor ready: no one can say
    they still serve."""
    names = region_names or {}
    regions: dict[str, dict[str, Any]] = {}
    for d in deployments:
        region = d.get("metadata", {}).get("labels", {}).get(REGION_LABEL)
        if region is None:
            continue
        region = names.get(region, region)
        status = d.get("status", {}) or {}
        spec_replicas = int(d.get("spec", {}).get("replicas", 0) or 0)
        current = int(status.get("observedGeneration", 0) or 0) >= int(d["metadata"].get("generation", 0) or 0)
        if region in unreachable:
            status = {**status, "replicas": 0, "readyReplicas": 0}
        regions[region] = {
            "rolled_out": current and int(status.get("updatedReplicas", 0) or 0) >= spec_replicas,
            "replicas": int(status.get("replicas", 0) or 0),
            "ready": int(status.get("readyReplicas", 0) or 0),
            "spec_replicas": spec_replicas,
            "unschedulable": 0,
            "unschedulable_since": None,
        }
    for pod in pods:
        if pod.get("metadata", {}).get("deletionTimestamp"):
            continue
        label = pod.get("metadata", {}).get("labels", {}).get(REGION_LABEL, "")
        region = names.get(label, label)
        cond = unschedulable_condition(pod)
        if cond is None or region not in regions:
            continue
        if not is_capacity(str(cond.get("message") or ""), (unready or {}).get(label, 0)):
            continue  # a pod no region could place (a missing claim, say) is a Problem, not a shortfall
        entry = regions[region]
        entry["unschedulable"] += 1
        since = timestamp(cond.get("lastTransitionTime"))
        if since is not None and (entry["unschedulable_since"] is None or since < entry["unschedulable_since"]):
            entry["unschedulable_since"] = since
    return Observation({n: RegionObservation(**v) for n, v in regions.items()})
