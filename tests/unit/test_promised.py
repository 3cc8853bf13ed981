"""GPUs promised to replicas on their way to a node: what each model is planned against."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from tests.sync_worlds import model, world

from meridian.api.region import Region
from meridian.placement.promised import Commitment, others, promised
from meridian.sync import sync

pytestmark = pytest.mark.unit


def test_replicas_on_a_node_or_refused_by_the_scheduler_are_no_longer_promised() -> None:
    commitments = [
        Commitment("a", "m1", "gra", replicas=3, gpus=2),
        Commitment("a", "m2", "gra", replicas=1, gpus=1),
        Commitment("a", "m2", "lim", replicas=2, gpus=1),
        Commitment("a", "cpu", "gra", replicas=4, gpus=0),  # takes no GPU: promises none
    ]
    settled = {("a", "m1", "gra"): 1, ("a", "m2", "lim"): 2}
    by_model = promised(commitments, settled)
    assert by_model == {("a", "m1"): Counter({"gra": 4}), ("a", "m2"): Counter({"gra": 1})}
    total = by_model[("a", "m1")] + by_model[("a", "m2")]
    assert others(total, by_model[("a", "m1")]) == {"gra": 1}  # a model's own replicas are its to keep
    assert others(total, None) == {"gra": 5}


def region(name: str, free: int) -> Region:
    pool = {"product": "A100", "capacity": 8, "allocatable": 8, "requested": 8 - free}
    return Region.model_validate(
        {
            "metadata": {"name": name},
            "spec": {"country": "FR", "jurisdictions": ["EU"]},
            "status": {"nodes": 1, "gpus": [pool]},
        }
    )


def placed(d: Any) -> dict[str, int]:
    return {r["name"]: r["desiredReplicas"] for r in d.status["regions"] if r["desiredReplicas"]}


def test_a_region_whose_free_gpus_are_promised_to_others_is_not_where_a_new_model_goes() -> None:
    md = model("llm", replicas=2, placement={"residency": ["EU"]})
    gra, lim = region("gra", free=8), region("lim", free=4)
    assert placed(sync(world(md, [gra, lim], {}))) == {"gra": 1, "lim": 1}  # split by equal weights
    # gra's eight free GPUs were just written into other models' Deployments, whose pods are on their way
    assert placed(sync(world(md, [gra, lim], {}, promised={"gra": 8}))) == {"lim": 2}
    assert placed(sync(world(md, [gra, lim], {}, promised={"gra": 7}))) == {"gra": 1, "lim": 1}
