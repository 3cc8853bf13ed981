"""Region: one datacenter, the jurisdictions it sits in, and the nodes that belong to it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from meridian.api.base import ApiModel, Condition, ObjectMeta

REGION_LABEL = "topology.kubernetes.io/region"


class RegionSpec(ApiModel):
    """A datacenter Meridian may place replicas in."""

    display_name: str = Field(default="", description="Human-readable name, e.g. Gravelines.", max_length=128)
    country: str = Field(description="ISO 3166-1 alpha-2 country code, e.g. FR.", pattern=r"^[A-Z]{2}$")
    jurisdictions: list[Annotated[str, StringConstraints(min_length=1, max_length=32)]] = Field(
        default_factory=list,
        max_length=32,
        description="Jurisdiction tags this region satisfies, e.g. [EU, EEA, FR].",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="Labels of this region's nodes. Empty means topology.kubernetes.io/region=<name>.",
    )
    cordoned: bool = Field(default=False, description="No new replicas here; existing ones are moved away.")

    def selector_for(self, name: str) -> dict[str, str]:
        return dict(self.node_selector) or {REGION_LABEL: name}


class GpuPool(ApiModel):
    """GPUs of one product in a region."""

    product: str = Field(description="GPU product (node label nvidia.com/gpu.product).")
    memory_mi_b: int = Field(default=0, alias="memoryMiB", description="GPU memory in MiB.")
    capacity: int = Field(default=0, description="GPUs on the region's nodes.")
    allocatable: int = Field(default=0, description="GPUs allocatable on Ready, schedulable nodes.")
    requested: int = Field(default=0, description="GPUs requested by pods scheduled here.")


class RegionObservedStatus(ApiModel):
    """Capacity observed from the region's nodes."""

    nodes: int = Field(default=0, description="Nodes matching the nodeSelector.")
    ready_nodes: int = Field(default=0, description="Of those, Ready and schedulable.")
    gpus: list[GpuPool] = Field(default_factory=list, description="GPU capacity per product.")
    total_gpus: int = Field(default=0, description="Allocatable GPUs of every product.")
    free_gpus: int = Field(default=0, description="Allocatable GPUs not requested by any pod.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready when the region has schedulable nodes.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class Region(ApiModel):
    """A datacenter and its jurisdictions."""

    api_version: str = Field(default="serving.meridian.dev/v1alpha1", description="API version.")
    kind: str = Field(default="Region", description="Kind.")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard object metadata.")
    spec: RegionSpec = Field(description="Desired state.")
    status: RegionObservedStatus = Field(default_factory=RegionObservedStatus, description="Observed capacity.")

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def node_selector(self) -> dict[str, str]:
        return self.spec.selector_for(self.metadata.name)
