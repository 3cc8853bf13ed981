"""The fleet file: datacenters (regions, zones, jurisdictions) and GPU node pools, and the objects they become.

A fleet file is the one description of a simulated cloud: `sim up` turns it into kwok nodes and
Region objects, and `render`/`plan` can read it instead of a live cluster. Everything here is pure;
cluster.py does the I/O.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from meridian import API_VERSION
from meridian.api.region import NODE_REGION_LABEL
from meridian.sim import kwok

# Nodes carry both region labels: topology.kubernetes.io/region because clusters and tools expect it
# (a kubelet may set it on itself, so nothing trusts it), NODE_REGION_LABEL because Regions select by it.
REGION_LABEL = "topology.kubernetes.io/region"
ZONE_LABEL = "topology.kubernetes.io/zone"
HOSTNAME_LABEL = "kubernetes.io/hostname"
OS_LABEL = "kubernetes.io/os"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_MEMORY_LABEL = "nvidia.com/gpu.memory"
GPU_COUNT_LABEL = "nvidia.com/gpu.count"
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
POOL_LABEL = "sim.meridian.dev/pool"
MAX_PODS = "110"

# memory per GPU as NVIDIA GPU feature discovery reports it (MiB), so pools need not repeat it
KNOWN_GPU_MEMORY_MIB: dict[str, int] = {
    "H100-80GB-HBM3": 81559,
    "H200-141GB-HBM3e": 143771,
    "B200": 183359,
    "A100-SXM4-80GB": 81920,
    "A100-SXM4-40GB": 40960,
    "L40S": 46068,
    "L4": 23034,
    "A10": 23028,
    "T4": 15360,
}

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


class _Model(BaseModel):
    """camelCase in YAML, snake_case in Python; unknown keys are errors (a typo must not pass silently)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


def _dns_label(value: str, what: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError(f"{what} {value!r} must be a DNS label (lowercase letters, digits, '-')")
    return value


class Taint(_Model):
    """A node taint, as in Node.spec.taints."""

    key: str
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"


DEFAULT_GPU_TAINT = Taint(key=GPU_RESOURCE, value="present", effect="NoSchedule")


class RegionSpec(_Model):
    """A datacenter: where it is, which jurisdictions it satisfies, and its availability zones."""

    name: str = Field(
        description=(
            "Region name; its nodes get node-restriction.kubernetes.io/region=<name>, which the Region selects, "
            "and topology.kubernetes.io/region=<name>."
        )
    )
    display_name: str = Field(default="", description="Human-readable name, e.g. Gravelines.")
    country: str = Field(description="ISO 3166-1 alpha-2 country code, e.g. FR.")
    jurisdictions: list[str] = Field(default_factory=list, description="Tags such as EU, EEA, FR.")
    zones: list[str] = Field(default_factory=list, description="Zone names; default [<name>-a].")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _dns_label(v, "region name")

    @field_validator("country")
    @classmethod
    def _country(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Z]{2}", v):
            raise ValueError(f"country {v!r} must be an ISO 3166-1 alpha-2 code such as FR")
        return v

    @model_validator(mode="after")
    def _zones(self) -> Self:
        if not self.zones:
            object.__setattr__(self, "zones", [f"{self.name}-a"])
        for z in self.zones:
            _dns_label(z, f"zone of region {self.name}")
        if len(set(self.zones)) != len(self.zones):
            raise ValueError(f"region {self.name} lists a zone twice: {self.zones}")
        if len(set(self.jurisdictions)) != len(self.jurisdictions):
            raise ValueError(f"region {self.name} lists a jurisdiction twice: {self.jurisdictions}")
        return self


class NodePool(_Model):
    """count identical nodes in one zone of one region."""

    name: str = Field(default="", description="Pool name, the node name prefix; default <zone>-<gpu>.")
    region: str
    zone: str = Field(default="", description="Zone of the region; may be omitted if it has only one.")
    count: int = Field(ge=0, le=5000)
    gpu_product: str = Field(default="", description="nvidia.com/gpu.product label, e.g. H100-80GB-HBM3.")
    gpus_per_node: int = Field(default=0, ge=0, le=64)
    gpu_memory_mib: int = Field(default=0, ge=0, description="Per GPU; default from the product table.")
    cpu: str = "64"
    memory: str = "512Gi"
    max_pods: str = MAX_PODS
    taints: list[Taint] | None = Field(
        default=None, description="Default: nvidia.com/gpu=present:NoSchedule on GPU pools, none on CPU pools."
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Extra node labels.")

    @field_validator("cpu", "memory", "max_pods")
    @classmethod
    def _quantity(cls, v: str) -> str:
        if not _QUANTITY.match(v):
            raise ValueError(f"{v!r} is not a Kubernetes quantity (e.g. 64, 500m, 512Gi)")
        return v

    @model_validator(mode="after")
    def _gpu(self) -> Self:
        if self.gpus_per_node > 0 and not self.gpu_product:
            raise ValueError(f"pool in region {self.region} has gpusPerNode but no gpuProduct")
        if self.gpu_product and self.gpus_per_node == 0:
            raise ValueError(f"pool in region {self.region} has gpuProduct {self.gpu_product} but gpusPerNode 0")
        if self.gpus_per_node > 0 and self.gpu_memory_mib == 0:
            known = KNOWN_GPU_MEMORY_MIB.get(self.gpu_product)
            if known is None:
                raise ValueError(
                    f"gpuMemoryMiB is required for GPU product {self.gpu_product!r} "
                    f"(known: {', '.join(sorted(KNOWN_GPU_MEMORY_MIB))})"
                )
            object.__setattr__(self, "gpu_memory_mib", known)
        return self

    def effective_taints(self) -> list[Taint]:
        if self.taints is not None:
            return list(self.taints)
        return [DEFAULT_GPU_TAINT] if self.gpus_per_node > 0 else []


def _gpu_slug(product: str) -> str:
    """H100-80GB-HBM3 -> h100, L40S -> l40s; empty product -> cpu."""
    if not product:
        return "cpu"
    return re.sub(r"[^a-z0-9]", "", product.split("-")[0].lower()) or "gpu"


class Fleet(_Model):
    """A simulated cloud: regions and the node pools in them."""

    topology: Literal["cluster", "clusters"] = Field(
        default="cluster",
        description=(
            "cluster: one Kubernetes cluster holds every region's nodes. clusters: a Karmada control plane "
            "and one member cluster per region, each with that region's nodes."
        ),
    )
    regions: list[RegionSpec] = Field(min_length=1)
    node_pools: list[NodePool] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> Self:
        names = [r.name for r in self.regions]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"region defined more than once: {', '.join(dupes)}")
        zone_owner: dict[str, str] = {}
        for r in self.regions:
            for z in r.zones:
                if z in zone_owner:
                    raise ValueError(f"zone {z} is in both region {zone_owner[z]} and region {r.name}")
                zone_owner[z] = r.name
        by_name = {r.name: r for r in self.regions}
        pools: list[NodePool] = []
        for i, p in enumerate(self.node_pools):
            region = by_name.get(p.region)
            if region is None:
                raise ValueError(f"nodePools[{i}]: unknown region {p.region!r} (regions: {', '.join(sorted(by_name))})")
            zone = p.zone
            if not zone:
                if len(region.zones) != 1:
                    raise ValueError(
                        f"nodePools[{i}]: region {p.region} has zones {region.zones}; set zone to one of them"
                    )
                zone = region.zones[0]
            elif zone not in region.zones:
                raise ValueError(
                    f"nodePools[{i}]: zone {zone!r} is not a zone of region {p.region} "
                    f"(zones: {', '.join(region.zones)})"
                )
            name = p.name or f"{zone}-{_gpu_slug(p.gpu_product)}"
            _dns_label(name, f"nodePools[{i}] name")
            pools.append(p.model_copy(update={"zone": zone, "name": name}))
        pool_names = [p.name for p in pools]
        dupes = sorted({n for n in pool_names if pool_names.count(n) > 1})
        if dupes:
            raise ValueError(f"node pool name used more than once: {', '.join(dupes)}; give the pools distinct `name`s")
        object.__setattr__(self, "node_pools", pools)
        return self

    def region(self, name: str) -> RegionSpec:
        for r in self.regions:
            if r.name == name:
                return r
        raise KeyError(name)

    def node_count(self) -> int:
        return sum(p.count for p in self.node_pools)


def load_fleet(path: Path) -> Fleet:
    """Parse and validate a fleet file; pydantic's ValidationError names the offending field."""
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a fleet file is a mapping with `regions` and `nodePools`")
    return Fleet.model_validate(data)


def describe(error: ValidationError) -> str:
    """One line per problem, `field.path: message`, without pydantic's boilerplate."""
    lines = []
    for e in error.errors():
        where = ".".join(str(p) for p in e["loc"])
        message = str(e["msg"]).removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where else message)
    return "; ".join(lines)


def node_name(pool: NodePool, index: int) -> str:
    return f"{pool.name}-{index}"


def _node_ip(n: int) -> str:
    return f"{kwok.NODE_IP_PREFIX}.{(n // 250) % 256}.{n % 250 + 1}"


def node_manifests(fleet: Fleet) -> list[dict[str, Any]]:
    """Node objects for every pool, ready to create: kwok-managed, labelled like GPU feature discovery."""
    nodes: list[dict[str, Any]] = []
    for pool in fleet.node_pools:
        for i in range(pool.count):
            name = node_name(pool, i)
            labels: dict[str, str] = {
                kwok.NODE_TYPE_LABEL: kwok.NODE_TYPE_VALUE,
                REGION_LABEL: pool.region,
                NODE_REGION_LABEL: pool.region,
                ZONE_LABEL: pool.zone,
                HOSTNAME_LABEL: name,
                OS_LABEL: "linux",
                "kubernetes.io/arch": "amd64",
                POOL_LABEL: pool.name,
            }
            resources: dict[str, str] = {"cpu": pool.cpu, "memory": pool.memory, "pods": pool.max_pods}
            if pool.gpus_per_node > 0:
                labels |= {
                    GPU_PRODUCT_LABEL: pool.gpu_product,
                    GPU_MEMORY_LABEL: str(pool.gpu_memory_mib),
                    GPU_COUNT_LABEL: str(pool.gpus_per_node),
                    GPU_PRESENT_LABEL: "true",
                }
                resources[GPU_RESOURCE] = str(pool.gpus_per_node)
            labels |= pool.labels
            spec: dict[str, Any] = {}
            taints = pool.effective_taints()
            if taints:
                spec["taints"] = [t.model_dump(exclude_defaults=False) for t in taints]
            nodes.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "labels": labels,
                        "annotations": {kwok.NODE_ANNOTATION: kwok.NODE_ANNOTATION_VALUE},
                    },
                    "spec": spec,
                    "status": {
                        "capacity": dict(resources),
                        "allocatable": dict(resources),
                        "addresses": [
                            {"type": "InternalIP", "address": _node_ip(len(nodes))},
                            {"type": "Hostname", "address": name},
                        ],
                    },
                }
            )
    return nodes


def region_manifests(fleet: Fleet) -> list[dict[str, Any]]:
    """Region objects (serving.meridian.dev) for every region of the fleet."""
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "Region",
            "metadata": {"name": r.name},
            "spec": {
                "displayName": r.display_name or r.name,
                "country": r.country,
                "jurisdictions": list(r.jurisdictions),
                "nodeSelector": {NODE_REGION_LABEL: r.name},
                "cordoned": False,
                **({"clusters": [r.name]} if fleet.topology == "clusters" else {}),
            },
        }
        for r in fleet.regions
    ]


def region_fleet(fleet: Fleet, region: str) -> Fleet:
    """The part of fleet in one region: what its member cluster holds when each region is a cluster."""
    return fleet.model_copy(
        update={
            "regions": [fleet.region(region)],
            "node_pools": [p for p in fleet.node_pools if p.region == region],
        }
    )
