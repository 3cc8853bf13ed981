"""Which regions may run a model, rule by rule, each exclusion with its reason.

Rules apply in the order users read them: residency, allow list, excludeRegions, cordoned, GPU
product and memory, then whether one replica fits a node at all (GPUs, CPU and memory together: a
pod that fits no node stays Pending in every region, so it is Stalled rather than moved). When
nothing is left, the Problem names the rule that emptied the list and what was missing (the
jurisdiction, the product, the node size), because that is what the user has to fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from meridian.api.modeldeployment import GpuResources, ModelDeploymentSpec
from meridian.api.region import Region
from meridian.placement.capacity import has_product, holds_replica, largest_node, replica_size, status_known
from meridian.placement.types import Exclusion, ExclusionRule, Problem


@dataclass(frozen=True)
class Qualification:
    """Qualifying region names (sorted) and, for every other region, why not (the first rule that fails).

    `forbidden` are the regions emptied at once, with why: residency is compliance, excludeRegions
    reads "never used", a region left out of the allow list is no longer allowed, and an untrusted
    region (its nodes also claimed by another Region) proves nothing. Regions excluded only by a
    cordon or a lost GPU product are drained surge-first.
    """

    qualifying: tuple[str, ...]
    excluded: tuple[Exclusion, ...]
    problems: tuple[Problem, ...] = ()
    forbidden: Mapping[str, str] = field(default_factory=dict)

    def exclusion(self, region: str) -> Exclusion | None:
        return next((e for e in self.excluded if e.region == region), None)


def plural(word: str, items: Iterable[str]) -> str:
    names = sorted(items)
    return f"{word}{'' if len(names) == 1 else 's'} {', '.join(names)}"


def gpu_wanted(gpu: GpuResources) -> str:
    """'GPU product H200' / 'GPU product H100 or A100 with at least 81920 MiB' / 'GPUs'."""
    text = "GPU product " + " or ".join(gpu.products) if gpu.products else "GPUs"
    if gpu.min_memory_mi_b > 0:
        text += f" with at least {gpu.min_memory_mi_b} MiB"
    return text


def qualify(
    spec: ModelDeploymentSpec, regions: Mapping[str, Region], untrusted: Mapping[str, str] | None = None
) -> Qualification:
    """`untrusted`: regions that must not be used whatever the spec says, with why."""
    untrusted = untrusted or {}
    placement, gpu = spec.placement, spec.resources.gpu
    required = frozenset(placement.residency)
    allowed = {p.name for p in placement.regions}
    never = set(placement.exclude_regions)
    size = replica_size(spec)
    lacks: dict[frozenset[str], str] = {}  # one sentence per missing set: many regions share it
    qualifying: list[str] = []
    excluded: list[Exclusion] = []
    forbidden: dict[str, str] = {}
    for name in sorted(regions):
        region = regions[name]
        missing = required.difference(region.spec.jurisdictions)
        if missing:
            if missing not in lacks:
                lacks[missing] = f"lacks {plural('jurisdiction', missing)}"
            forbidden[name] = lacks[missing]
            excluded.append(Exclusion(name, "residency", lacks[missing]))
        elif name in untrusted:
            forbidden[name] = untrusted[name]
            excluded.append(Exclusion(name, "untrusted", untrusted[name]))
        elif allowed and name not in allowed:
            forbidden[name] = "is not in spec.placement.regions"
            excluded.append(Exclusion(name, "allowList", "not in spec.placement.regions"))
        elif name in never:
            excluded.append(Exclusion(name, "excludeRegions", "in spec.placement.excludeRegions"))
        elif region.spec.cordoned:
            excluded.append(Exclusion(name, "cordoned", "cordoned"))
        elif status_known(region.status) and not has_product(region.status, gpu):
            excluded.append(Exclusion(name, "gpu", f"has no {gpu_wanted(gpu)}"))
        elif status_known(region.status) and not holds_replica(region.status, gpu, size):
            excluded.append(
                Exclusion(
                    name, "fit", f"has no node that holds one replica (largest: {largest_node(region.status, gpu)})"
                )
            )
        else:
            qualifying.append(name)
        if name in never and name not in forbidden:
            forbidden[name] = "in spec.placement.excludeRegions"
    problems = () if qualifying else (_why_none(spec, regions, excluded),)
    return Qualification(tuple(qualifying), tuple(excluded), problems, forbidden)


def _why_none(spec: ModelDeploymentSpec, regions: Mapping[str, Region], excluded: list[Exclusion]) -> Problem:
    """The Problem for the rule that removed the last candidates."""
    by_rule: dict[ExclusionRule, list[str]] = {}
    for e in excluded:
        by_rule.setdefault(e.rule, []).append(e.region)
    required = set(spec.placement.residency)
    if set(by_rule) == {"residency"}:
        carried = {t for r in regions.values() for t in r.spec.jurisdictions}
        absent = required - carried
        if absent:
            return Problem("NoQualifyingRegion", f"no region carries {plural('jurisdiction', absent)}")
        return Problem("NoQualifyingRegion", f"no region carries all of {plural('jurisdiction', required)} together")
    last = next(r for r in ("fit", "gpu", "cordoned", "excludeRegions", "untrusted", "allowList") if r in by_rule)
    names = ", ".join(by_rule[last])
    with_tags = f" with {plural('jurisdiction', required)}" if required else ""
    if last == "fit":
        largest = "; ".join(
            f"{e.region}: {largest_node(regions[e.region].status, spec.resources.gpu)}"
            for e in excluded
            if e.rule == "fit"
        )
        return Problem(
            "NoNodeFits", f"one replica requests {replica_size(spec).text}, more than any node holds ({largest})"
        )
    if last == "gpu":
        return Problem("NoGpuProduct", f"no qualifying region has {gpu_wanted(spec.resources.gpu)} (checked: {names})")
    if last == "cordoned":
        return Problem("NoQualifyingRegion", f"every qualifying region is cordoned: {names}")
    if last == "untrusted":
        return Problem("NoQualifyingRegion", f"every qualifying region is untrusted: {names}")
    if last == "excludeRegions":
        return Problem(
            "NoQualifyingRegion", f"every allowed region{with_tags} is in spec.placement.excludeRegions: {names}"
        )
    if required:
        return Problem(
            "NoQualifyingRegion",
            f"no region in spec.placement.regions carries {plural('jurisdiction', required)}"
            f" (regions that do: {names})",
        )
    return Problem("NoQualifyingRegion", f"no region in spec.placement.regions qualifies (others: {names})")
