"""GPUs promised but not yet held: replicas Meridian has written into a region that no node holds yet.

Region capacity counts the GPUs of scheduled pods. Between a Deployment's write and its pods being
scheduled, the region still looks free, and every model planned meanwhile would be put in it too.
In one cluster that window is a fraction of a second; behind Karmada, where a Deployment reaches
its member cluster and makes pods there seconds later, 75 models created at once all went to the
first region, and two thirds of them waited out their failover hold before moving. So each model
is planned against the other models' promised GPUs as well as the held ones.

A promise lasts `PROMISE_SECONDS` from the write that made it: replicas that no pod stands for by
then are not on their way (a namespace being deleted loses its pods first and its Deployments
last; pods an admission policy refuses never come), and would hold GPUs from everyone for ever.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

PROMISE_SECONDS = 60.0  # longer than Karmada takes to bring a Deployment's pods to its member
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


def promised_to_others(waiting: Mapping[Triple, tuple[int, float]], model: ModelKey, now: float) -> dict[str, int]:
    """GPUs per region label promised to every model but `model` (its own replicas are its to keep,
    as its scheduled ones are): `waiting` GPUs per (namespace, model, region), and since when."""
    out: Counter[str] = Counter()
    for triple, (gpus, since) in waiting.items():
        if triple[:2] != model and now - since < PROMISE_SECONDS:
            out[triple[2]] += gpus
    return {r: n for r, n in out.items() if n > 0}
