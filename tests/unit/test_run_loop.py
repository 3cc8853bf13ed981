"""The operator's event loop: Python 3.11's failure to close an abandoned async generator is a
warning, not an error line; any other unretrieved task error still reaches asyncio's handler."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from meridian.reconcile.main import loop_exception

pytestmark = pytest.mark.unit


async def _stream() -> AsyncIterator[int]:
    await asyncio.sleep(3600)
    yield 1


async def _consume(stream: AsyncIterator[int]) -> None:
    async for _ in stream:
        pass


def test_an_abandoned_generator_that_cannot_close_is_a_warning() -> None:
    handled: list[dict[str, Any]] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda lp, ctx: (handled.append(ctx), loop_exception(lp, ctx)))
        stream = _stream()
        consumer = _consume(stream)
        step = asyncio.ensure_future(consumer)
        await asyncio.sleep(0)
        consumer.close()  # what destroying the awaiting coroutine does, leaving the stream "running"
        step.cancel()
        del stream, consumer, step
        gc.collect()  # the stream's finalizer schedules aclose(), which fails on 3.11
        for _ in range(5):
            await asyncio.sleep(0)
        gc.collect()

    with capture_logs() as logs:
        asyncio.run(scenario())
    failed_closes = [c for c in handled if "already running" in str(c.get("exception"))]
    if not failed_closes:
        pytest.skip("this Python closes such a generator (CPython gh-117881 fixed)")
    assert [e["log_level"] for e in logs if e["event"] == "an abandoned async generator could not be closed"] == [
        "warning"
    ] * len(failed_closes)


def test_any_other_unretrieved_task_error_reaches_asyncio() -> None:
    passed: list[dict[str, Any]] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        loop.default_exception_handler = passed.append  # type: ignore[method-assign]
        loop.set_exception_handler(loop_exception)

        async def boom() -> None:
            raise RuntimeError("a real bug")

        task = asyncio.ensure_future(boom())
        await asyncio.sleep(0)
        del task
        gc.collect()

    with capture_logs() as logs:
        asyncio.run(scenario())
    assert [str(c["exception"]) for c in passed] == ["a real bug"]
    assert not [e for e in logs if e["event"] == "an abandoned async generator could not be closed"]
