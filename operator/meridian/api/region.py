"""Region: one datacenter, the jurisdictions it sits in, and the nodes that belong to it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from meridian.api.base import ApiModel, Condition, ObjectMeta, cel

# The node label a Region selects by unless it says otherwise. Under the NodeRestriction admission plugin a
# kubelet cannot set node-restriction.kubernetes.io/* labels on its own Node (it can set
# topology.kubernetes.io/region), so only an administrator decides which Region a node belongs to.
NODE_REGION_LABEL = "node-restriction.kubernetes.io/region"


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
    node_selector: dict[str, str] | None = Field(
        default=None,
        description=(
            "Node labels that place a node in this region: a node belongs to it when it carries all of them. "
            f"Absent means {NODE_REGION_LABEL}=<metadata.name>, a label an administrator sets "
            f"(kubectl label node <node> {NODE_REGION_LABEL}=<name>) and that the NodeRestriction admission "
            "plugin stops a kubelet from setting on its own Node, unlike topology.kubernetes.io/region. "
            "When given, it names at least one label, with non-empty keys and values. A node selected by "
            "two Regions makes both Ready=False."
        ),
        json_schema_extra={
            "maxProperties": 16,
            "additionalProperties": {"type": "string", "maxLength": 63},
            "x-kubernetes-validations": [
                cel(
                    "size(self) > 0 && self.all(k, size(k) > 0 && size(self[k]) > 0)",
                    "spec.nodeSelector must name at least one label, with non-empty keys and values; "
                    f"omit it to select by {NODE_REGION_LABEL}=<metadata.name>",
                )
            ],
        },
    )
    clusters: (
        list[Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]]
        | None
    ) = Field(
        default=None,
        min_length=1,
        max_length=16,
        description=(
            "How the region is reached. Absent: as nodes of the cluster Meridian runs against. Given: as "
            "these Karmada member clusters (names of cluster.karmada.io Clusters), with Meridian running "
            "against the Karmada API server; each regional workload is propagated only to them, and only "
            "while they carry the jurisdiction labels the model requires. nodeSelector still selects the "
            "region's nodes inside them."
        ),
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    cordoned: bool = Field(default=False, description="No new replicas here; existing ones are moved away.")

    def selector_for(self, name: str) -> dict[str, str]:
        """The effective selector: spec.nodeSelector, or the default label when it is absent.

        The API server rejects an empty nodeSelector; one stored before that rule existed keeps its old
        meaning, the default, and never selects every node.
        """
        return dict(self.node_selector) if self.node_selector else {NODE_REGION_LABEL: name}


class NodeShape(ApiModel):
    """What one node of a GPU pool can hold: a replica fits only if all of its requests fit one node."""

    gpus: int = Field(description="GPUs allocatable on each node of this shape.")
    cpu: str = Field(description="CPU allocatable on each node of this shape (a quantity; empty if not reported).")
    memory: str = Field(
        description="Memory allocatable on each node of this shape (a quantity; empty if not reported)."
    )
    nodes: int = Field(default=0, description="Nodes of this shape, Ready or not.")


class GpuPool(ApiModel):
    """GPUs of one product in a region."""

    product: str = Field(description="GPU product (node label nvidia.com/gpu.product).")
    memory_mi_b: int = Field(default=0, alias="memoryMiB", description="GPU memory in MiB.")
    capacity: int = Field(default=0, description="GPUs on the region's nodes.")
    allocatable: int = Field(default=0, description="GPUs allocatable on Ready, schedulable nodes.")
    requested: int = Field(default=0, description="GPUs requested by pods scheduled here.")
    not_ready: int = Field(
        default=0,
        alias="notReady",
        description=(
            "GPUs allocatable on nodes that were Ready and are not now (cordoned nodes aside). A model "
            "still counts them for its failover.unschedulableSeconds after notReadySince: a node "
            "that flaps is not a region lost."
        ),
    )
    not_ready_since: str = Field(
        default="",
        alias="notReadySince",
        description="When the last of those nodes stopped being Ready (RFC 3339); empty when none.",
    )
    shapes: list[NodeShape] = Field(
        default_factory=list,
        description="The pool's node sizes, largest first: a model whose replica fits none of them is Stalled.",
    )


class RegionObservedStatus(ApiModel):
    """Capacity observed from the region's nodes. A change of nodes, GPUs or conditions is written at
    once; GPUs merely taken or freed by pods at most every 15 seconds (the operator plans with what
    it observes, not with this copy)."""

    nodes: int = Field(default=0, description="Nodes matching the nodeSelector.")
    ready_nodes: int = Field(default=0, description="Of those, Ready and schedulable.")
    gpus: list[GpuPool] = Field(default_factory=list, description="GPU capacity per product.")
    total_gpus: int = Field(default=0, description="Allocatable GPUs of every product.")
    free_gpus: int = Field(
        default=0,
        description=("Allocatable GPUs not requested by any pod; while pods come and go, up to 15 seconds old."),
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description=(
            "Ready: the region has Ready, schedulable nodes and none of them is selected by another Region. "
            "SelectorProtected: the nodeSelector uses a label a kubelet cannot set on its own Node."
        ),
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
