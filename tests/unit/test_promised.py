"""GPUs promised to replicas on their way to a node: what each model is planned against."""

from __future__ import annotations

from typing import Any

import pytest
from tests.sync_worlds import model, world

from meridian.api.region import Region
from meridian.placement.promised import PROMISE_SECONDS, promised_to_others, waiting_gpus
from meridian.sync import sync

pytestmark = pytest.mark.unit


def test_replicas_on_a_node_or_refused_by_the_scheduler_are_no_longer_promised() -> None:
    assert waiting_gpus([(3, 2)], settled=1) == 4
    assert waiting_gpus([(3, 2), (1, 2)], settled=1) == 6  # a renamed Deployment beside the old one
    assert waiting_gpus([(1, 2)], settled=2) == 0  # a surge pod beyond the replicas asked for
    assert waiting_gpus([(4, 0)], settled=0) == 0  # a replica of no GPU promises none
    assert waiting_gpus([], settled=0) == 0


def test_a_promise_is_to_others_and_lasts_a_while_from_the_write_that_made_it() -> None:
    gpus = {("a", "m1", "gra"): 4, ("a", "m2", "gra"): 1, ("a", "m2", "lim"): 1, ("b", "m1", "gra"): 2}
    waiting = {triple: (n, 100.0) for triple, n in gpus.items()}
    assert promised_to_others(waiting, ("a", "m1"), 110.0) == {"gra": 3, "lim": 1}  # its own are its to keep
    assert promised_to_others(waiting, ("a", "m3"), 110.0) == {"gra": 7, "lim": 1}
    # replicas no pod stands for long after their write are not on their way (a namespace being deleted)
    assert promised_to_others(waiting, ("a", "m3"), 100.0 + PROMISE_SECONDS) == {}


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
