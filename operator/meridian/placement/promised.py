"""GPUs promised but not yet held: replicas Meridian has written into a region that no node holds yet.

Region capacity counts the GPUs of scheduled pods. Between a Deployment's write and its pods being
scheduled, the region still looks free, and every model planned meanwhile would be put in it too.
In one cluster that window is a fraction of a second; behind Karmada, where a Deployment reaches
its member cluster and makes pods there seconds later, 75 models created at once all went to the
first region, and two thirds of them waited out their failover hold before moving. So each model
is planned against the other models' promised GPUs as well as the held ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

ModelKey = tuple[str, str]  # (namespace, model-deployment label value)


@dataclass(frozen=True)
class Commitment:
    """One regional Deployment of a model: how many replicas it asks for, of how many GPUs each."""

    namespace: str
    model: str  # its model-deployment label value
    region: str  # its region label value
    replicas: int
    gpus: int  # per replica


def promised(
    commitments: Iterable[Commitment], settled: Mapping[tuple[str, str, str], int]
) -> dict[ModelKey, Counter[str]]:
    """Per model, per region label: GPUs of its replicas asked for and still on their way. `settled`
    counts each (namespace, model, region) pod that a node holds or that the scheduler found no
    room for: the first is counted in the region's requested GPUs already, the second takes
    nothing (a model stalled on a missing claim blocks no one)."""
    out: dict[ModelKey, Counter[str]] = {}
    for c in commitments:
        waiting = c.replicas - settled.get((c.namespace, c.model, c.region), 0)
        if waiting > 0 and c.gpus > 0:
            out.setdefault((c.namespace, c.model), Counter())[c.region] += waiting * c.gpus
    return out


def others(total: Counter[str], own: Counter[str] | None) -> dict[str, int]:
    """GPUs per region label promised to every model but one (`own` its share of `total`): a
    model's own replicas are its to keep, as its scheduled ones are."""
    left = total - own if own else total
    return dict(left)
