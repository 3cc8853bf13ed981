"""How many replicas of one model fit in a region, from the Region's observed GPU pools.

Free GPUs of the products this model accepts, divided by GPUs per replica, plus the model's own
replicas already scheduled there: their GPUs are in `requested`, but they are capacity this model
keeps using, so counting them stops a running model from evicting itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from meridian.api.modeldeployment import GpuResources, ModelDeploymentSpec
from meridian.api.region import GpuPool, NodeShape, Region, RegionObservedStatus
from meridian.quantity import quantity_or_none
from meridian.timestamps import seconds

TRACKED_RESOURCE = "nvidia.com/gpu"


@dataclass(frozen=True)
class Capacity:
    """Replicas of this model that fit in one region; `replicas` None means unknown (unbounded)."""

    replicas: int | None
    free_gpus: int = 0
    gpus_per_replica: int = 1
    running: int = 0
    unknown_because: str = ""

    def describe(self) -> str:
        """'3 free GPUs / 2 per replica (+1 running here)' or why capacity is unknown."""
        if self.replicas is None:
            return f"capacity unknown ({self.unknown_because}), treated as unbounded"
        text = f"{self.free_gpus} free GPU{'' if self.free_gpus == 1 else 's'} / {self.gpus_per_replica} per replica"
        if self.running:
            text += f" (+{self.running} running here)"
        return text


def status_known(status: RegionObservedStatus) -> bool:
    """A status never written has no nodes, no pools and no conditions; a region with no nodes left has a condition."""
    return bool(status.nodes or status.gpus or status.conditions)


def pool_matches(pool: GpuPool, gpu: GpuResources) -> bool:
    """The product is one the model accepts (any, if none listed) with enough memory per GPU."""
    if gpu.products and pool.product not in gpu.products:
        return False
    return gpu.min_memory_mi_b <= 0 or pool.memory_mi_b >= gpu.min_memory_mi_b


def has_product(status: RegionObservedStatus, gpu: GpuResources) -> bool:
    """Some pool of an accepted product exists (it may be full: that is capacity, not qualification)."""
    return any(pool_matches(p, gpu) and (p.capacity > 0 or p.allocatable > 0) for p in status.gpus)


@dataclass(frozen=True)
class ReplicaSize:
    """What one replica's pod requests; cpu or memory None when not a quantity (the API server says so)."""

    gpus: int
    cpu: Decimal | None
    memory: Decimal | None
    text: str

    def fits(self, shape: NodeShape) -> bool:
        return shape.gpus >= self.gpus and _room(shape.cpu, self.cpu) and _room(shape.memory, self.memory)


def _room(have: str, need: Decimal | None) -> bool:
    """A node's allocatable `have` covers `need`; what cannot be read is taken to."""
    value = quantity_or_none(have)
    return need is None or value is None or need <= value


def replica_size(spec: ModelDeploymentSpec) -> ReplicaSize:
    res = spec.resources
    gpus = spec.gpus_per_replica if res.gpu.resource_name == TRACKED_RESOURCE else 0
    text = f"{gpus} GPU{'' if gpus == 1 else 's'}, cpu {res.cpu}, memory {res.memory}"
    return ReplicaSize(gpus, quantity_or_none(res.cpu), quantity_or_none(res.memory), text)


def describe_shape(product: str, shape: NodeShape) -> str:
    return f"{product} node: {shape.gpus} GPUs, cpu {shape.cpu}, memory {shape.memory}"


def largest_node(status: RegionObservedStatus, gpu: GpuResources) -> str:
    """'H100-80GB-HBM3 node: 8 GPUs, cpu 192, memory 2Ti' for the largest accepted node, by GPUs."""
    shapes = [(s.gpus, p.product, s) for p in status.gpus if pool_matches(p, gpu) for s in p.shapes[:1]]
    if not shapes:
        return "no node"
    _, product, shape = max(shapes, key=lambda t: t[0])
    return describe_shape(product, shape)


def holds_replica(status: RegionObservedStatus, gpu: GpuResources, size: ReplicaSize) -> bool:
    """Some node of an accepted product could run one replica once free; a pool that reports no
    shapes (a status written by an earlier version) is taken to."""
    pools = [p for p in status.gpus if pool_matches(p, gpu)]
    return any(not p.shapes or any(size.fits(s) for s in p.shapes) for p in pools)


def in_grace(pool: GpuPool, now: float, grace: float) -> bool:
    """The pool's not-Ready nodes went down less than `grace` seconds ago: still counted."""
    since = seconds(pool.not_ready_since)
    return pool.not_ready > 0 and since is not None and now > 0 and now - since < grace


def free_gpus(status: RegionObservedStatus, gpu: GpuResources, now: float = 0.0, grace: float = 0.0) -> int:
    """Free GPUs of accepted pools, those of nodes not Ready for less than `grace` included."""
    return sum(
        max(0, p.allocatable + (p.not_ready if in_grace(p, now, grace) else 0) - p.requested)
        for p in status.gpus
        if pool_matches(p, gpu)
    )


def grace_ends_in(regions: Iterable[Region], spec: ModelDeploymentSpec, now: float) -> float | None:
    """Seconds until the first not-Ready pool this model still counts stops being counted: no event
    says so, so the caller looks again then."""
    grace = float(spec.placement.failover.unschedulable_seconds)
    ends = [
        since + grace - now
        for r in regions
        for p in r.status.gpus
        if pool_matches(p, spec.resources.gpu) and in_grace(p, now, grace)
        for since in [seconds(p.not_ready_since)]
        if since is not None
    ]
    return min(ends) if ends else None


def region_capacity(
    region: Region, spec: ModelDeploymentSpec, running: int, now: float = 0.0, promised: int = 0
) -> Capacity:
    """Capacity for `spec` in `region`, counting `running` of its own scheduled replicas as usable, and
    GPUs of nodes not Ready for less than failover.unschedulableSeconds (a flap, not a loss: replicas
    placed there wait Pending, and that wait is what failover times). `promised` GPUs, other models'
    replicas on their way to a node, are not free. They are counted against the accepted pools as a
    whole: which product a replica on its way will get is not known yet."""
    gpu = spec.resources.gpu
    per_replica = spec.gpus_per_replica
    if gpu.resource_name != TRACKED_RESOURCE:
        return Capacity(None, gpus_per_replica=per_replica, unknown_because=f"{gpu.resource_name} is not tracked")
    if not status_known(region.status):
        return Capacity(None, gpus_per_replica=per_replica, unknown_because="Region status not reported yet")
    free = free_gpus(region.status, gpu, now, float(spec.placement.failover.unschedulable_seconds))
    free = max(0, free - promised)
    return Capacity(free // per_replica + running, free, per_replica, running)
