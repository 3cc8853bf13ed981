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
from collections.abc import Iterable

Triple = tuple[str, str, str]  # (namespace, model-deployment label value, region label value)
ModelKey = tuple[str, str]  # (namespace, model-deployment label value)


def waiting_gpus(asked: Iterable[tuple[int, int]], settled: int) -> int:
    """GPUs of one model's replicas in one region still on their way: `asked` holds (replicas, GPUs
    each) of its Deployments there, `settled` its pods there that a node holds (already counted in
    the region's requested GPUs) or that the scheduler found no room for (they take nothing: a
    model stalled on a missing claim blocks no one)."""
    asked = list(asked)
    replicas = sum(r for r, _ in asked)
    gpus = max((g for _, g in asked), default=0)
    return max(0, replicas - settled) * gpus


def others(total: Counter[str], own: Counter[str] | None) -> dict[str, int]:
    """GPUs per region label promised to every model but one (`own` its share of `total`): a
    model's own replicas are its to keep, as its scheduled ones are."""
    left = total - own if own else total
    return {r: n for r, n in left.items() if n > 0}
