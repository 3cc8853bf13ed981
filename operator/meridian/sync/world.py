"""Everything one reconcile pass reads, gathered by the shell before the pure pass runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meridian.api.modeldeployment import ModelDeployment
from meridian.api.region import Region
from meridian.config import Settings
from meridian.placement.claims import NodeClaims
from meridian.placement.types import Hold

ChildKey = tuple[str, str]  # (kind, name)
CLUSTER = "cluster"  # a pod's key naming the Karmada member cluster it runs in; absent for this cluster's pods
# server-side apply's 500s for an object its kind's schema cannot hold (a field it lacks, a value
# it cannot convert): refusals of the object, whatever the status code says
UNTYPED_OBJECT = ("failed to create typed patch object", "failed to convert new object")


@dataclass(frozen=True)
class ApplyFailure:
    """The API server refused or failed a write of this pass; the next status says so."""

    object: str  # Kind/name
    status: int  # HTTP status; 0 for a timeout or a connection error
    message: str

    @property
    def permanent(self) -> bool:
        """Refused for what the object is (forbidden, invalid): retrying the same write cannot help.
        Server-side apply answers 500 when the object has a field the kind's schema lacks (from a
        spec's free-form part, such as an env valueFrom): that is the object too."""
        return self.status in (400, 403, 422) or (self.status == 500 and any(m in self.message for m in UNTYPED_OBJECT))


@dataclass(frozen=True)
class World:
    """One model and what surrounds it, as the watch caches (or lists) saw it.

    `owned` are the children whose controller ownerReference is this model; `foreign` names objects
    this model would create that exist already under another controller (or none), with who that
    is, so that a name is never taken over. `claims` says which Regions select each node (from the
    Regions' selectors and the nodes' labels); `namespace_residency` is the namespace's
    `serving.meridian.dev/residency` label ("" when unlabelled). `unserved` are child kinds whose
    CRDs the cluster lacks (InferencePool, HTTPRoute), which a model asking for routing needs.
    `unreachable` are Regions reached as Karmada member clusters none of which answers now.
    `promised` are GPUs per region label value of other models' replicas on their way to a node.
    """

    model: ModelDeployment
    regions: tuple[Region, ...] = ()
    owned: Mapping[ChildKey, Mapping[str, Any]] = field(default_factory=dict)
    foreign: Mapping[ChildKey, str] = field(default_factory=dict)
    pods: tuple[Mapping[str, Any], ...] = ()
    claims: NodeClaims = field(default_factory=NodeClaims)
    namespace_residency: str = ""
    held: Mapping[str, Hold] = field(default_factory=dict)
    now: float = 0.0
    settings: Settings = field(default_factory=Settings)
    apply_failure: ApplyFailure | None = None
    unserved: frozenset[str] = frozenset()
    unreachable: frozenset[str] = frozenset()
    promised: Mapping[str, int] = field(default_factory=dict)
