"""`meridian run`: configure logging, open the metrics port, then run the kopf operator until signalled.

What cannot pass by waiting (the metrics port already taken, a kind the operator may not list or
watch) ends the process at once, non-zero, with a message naming it; kopf would retry a failing
start-up handler forever.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import kopf

from meridian.config import Settings
from meridian.log import configure
from meridian.log import get as get_logger
from meridian.reconcile.metrics import serve


def loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Python 3.11 cannot close an async generator whose pending `__anext__()` was closed with the
    coroutine awaiting it (CPython gh-117881, fixed in 3.13): the garbage collector's `aclose()`
    then fails with "already running", and asyncio logs that as an unretrieved task error. It
    happens rarely in kopf's watch streams as a namespace is deleted, and costs nothing but the
    generator's own clean-up, so it is a warning; every other loop error goes to asyncio's handler."""
    task, error = context.get("future"), context.get("exception")
    coro = task.get_coro() if isinstance(task, asyncio.Task) else None
    if isinstance(error, RuntimeError) and type(coro).__name__ == "async_generator_athrow":
        get_logger("meridian.run").warning("an abandoned async generator could not be closed", error=str(error))
        return
    loop.default_exception_handler(context)


def settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for flag, field in [
        ("namespace", "namespaces"),
        ("metrics_port", "metrics_port"),
        ("prometheus_url", "prometheus_url"),
        ("log_format", "log_format"),
        ("log_level", "log_level"),
        ("peering", "peering"),
    ]:
        value = getattr(args, flag, None)
        if value is not None:
            overrides[field] = value
    return Settings(**overrides)


async def operate(settings: Settings, stop: asyncio.Event | None = None) -> None:
    import meridian.reconcile.handlers  # noqa: F401  registers the handlers

    asyncio.get_running_loop().set_exception_handler(loop_exception)

    await kopf.operator(
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        memo=kopf.Memo(config=settings),
        stop_flag=stop,
        standalone=not settings.peering,
        peering_name=settings.peering or None,
    )


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    configure(settings.log_level, settings.log_format)
    try:
        serve(settings.metrics_port)
    except OSError as e:
        get_logger("meridian.run").error(
            "cannot serve metrics; set MERIDIAN_METRICS_PORT or --metrics-port",
            port=settings.metrics_port,
            error=str(e),
        )
        return 1
    try:
        asyncio.run(operate(settings))
    except Exception as e:  # a start-up that cannot succeed (a kind we may not watch): say so, exit 1
        cause = e.__cause__ or e
        get_logger("meridian.run").error("operator stopped", error=str(cause) or repr(cause))
        return 1
    return 0
