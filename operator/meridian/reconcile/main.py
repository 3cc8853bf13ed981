"""`meridian run`: configure logging, then run the kopf operator until signalled."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import kopf

from meridian.config import Settings
from meridian.log import configure


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
    asyncio.run(operate(settings))
    return 0
