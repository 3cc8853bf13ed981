"""Periodic jobs: each known model once per interval, none while standing by, no run on top of another."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest

from meridian.reconcile.periodic import Job, ModelKey, run

pytestmark = pytest.mark.unit


class Runs:
    """Runs started per model; a test waits on a condition of them, never on a fixed sleep."""

    def __init__(self) -> None:
        self.started: Counter[ModelKey] = Counter()
        self.changed = asyncio.Condition()

    async def start(self, key: ModelKey) -> None:
        async with self.changed:
            self.started[key] += 1
            self.changed.notify_all()

    async def until(self, check: Any) -> None:
        async with asyncio.timeout(5), self.changed:
            await self.changed.wait_for(check)


async def test_every_wanted_model_runs_each_interval_and_a_standby_runs_none() -> None:
    models: dict[ModelKey, Mapping[str, Any]] = {
        ("a", "m1"): {"spec": {"autoscaling": {"enabled": True}}},
        ("a", "m2"): {"spec": {}},
        ("b", "m3"): {"spec": {"autoscaling": {"enabled": True}}},
    }
    runs = Runs()

    async def action(key: ModelKey, body: Mapping[str, Any]) -> None:
        await runs.start(key)

    job = Job("autoscale", 0.1, action, wanted=lambda b: bool(b["spec"].get("autoscaling")))
    task = asyncio.create_task(run(job, lambda: models, lambda key: key[0] != "b"))  # standing by for "b"
    try:
        await runs.until(lambda: runs.started[("a", "m1")] >= 3)
        assert runs.started[("a", "m2")] == 0, "not wanted"
        assert runs.started[("b", "m3")] == 0, "this replica stands by for b"
        models[("a", "m4")] = {"spec": {"autoscaling": {"enabled": True}}}  # a model created meanwhile
        await runs.until(lambda: runs.started[("a", "m4")] >= 1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_slow_or_failing_run_never_overlaps_or_stops_the_job() -> None:
    models: dict[ModelKey, Mapping[str, Any]] = {("a", "slow"): {}, ("a", "bad"): {}}
    runs = Runs()
    running: set[ModelKey] = set()
    overlapped = False
    release = asyncio.Event()

    async def action(key: ModelKey, body: Mapping[str, Any]) -> None:
        nonlocal overlapped
        overlapped = overlapped or key in running
        await runs.start(key)
        if key[1] == "bad":
            raise RuntimeError("metrics endpoint down")
        running.add(key)
        await release.wait()
        running.discard(key)

    task = asyncio.create_task(run(Job("probe", 0.05, action), lambda: models, lambda key: True))
    try:
        await runs.until(lambda: runs.started[("a", "bad")] >= 5)  # failures do not stop the job
        assert runs.started[("a", "slow")] == 1, "a run still going is not started again"
        release.set()
        await runs.until(lambda: runs.started[("a", "slow")] >= 2)
        assert not overlapped
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
