"""The operator's periodic work on each model: autoscaling, the runtime probe, a slow resync.

Not kopf timers: kopf puts its finalizer on every object that has a timer (to stop it before the
object goes), which costs two writes per model and leaves every ModelDeployment undeletable once
the operator is uninstalled. Each job instead walks the models the operator knows, spread evenly
over its interval, and skips a model whose previous run has not finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from meridian.log import get as get_logger

ModelKey = tuple[str, str]
log = get_logger("meridian.periodic")


@dataclass(frozen=True)
class Job:
    name: str
    interval: float
    action: Callable[[ModelKey, Mapping[str, Any]], Awaitable[None]]
    wanted: Callable[[Mapping[str, Any]], bool] = lambda body: True
    initial_delay: float = 0.0


async def _guarded(job: Job, key: ModelKey, body: Mapping[str, Any]) -> None:
    try:
        await job.action(key, body)
    except Exception as e:  # one model's failure must not stop the job for the others
        log.warning("periodic job failed", job=job.name, namespace=key[0], name=key[1], error=repr(e)[:300])


async def run(
    job: Job, models: Callable[[], Mapping[ModelKey, Mapping[str, Any]]], may_run: Callable[[ModelKey], bool]
) -> None:
    """Run `job` on every wanted model once per interval, until cancelled. `may_run` says whether this
    replica may act for a model now (not while it stands by under peering)."""
    running: dict[ModelKey, asyncio.Task[None]] = {}
    try:
        await asyncio.sleep(job.initial_delay)
        while True:
            keys = sorted(k for k, body in list(models().items()) if job.wanted(body))
            if not keys:
                await asyncio.sleep(job.interval)
                continue
            gap = job.interval / len(keys)
            for key in keys:
                body = models().get(key)
                previous = running.get(key)
                if body is not None and (previous is None or previous.done()) and may_run(key):
                    running[key] = asyncio.create_task(_guarded(job, key, body), name=f"{job.name} {key[0]}/{key[1]}")
                await asyncio.sleep(gap)
            for key in [k for k, task in running.items() if task.done()]:
                del running[key]
    finally:
        for task in running.values():
            task.cancel()
