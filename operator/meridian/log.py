"""structlog set up once per process: JSON lines for machines, console for people at a terminal."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog


def _object_ref(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """kopf logs about an object carry it in `k8s_ref`; lift namespace/name onto the line."""
    record = event.get("_record")
    ref = getattr(record, "k8s_ref", None) if record is not None else None
    if isinstance(ref, dict):
        event.setdefault("namespace", ref.get("namespace"))
        event.setdefault("name", ref.get("name"))
    return event


class TransientRetries(logging.Filter):
    """kopf logs every retried request at error level; a 429 (the API server starting, or asking us
    to slow down) is retried as asked and is no error. Say it once per request, at info."""

    RETRY = re.compile(r"Request attempt #\d+(/\d+)? failed; will retry: (\S+ \S+) -> APITooManyRequestsError")

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("kopf") or record.levelno < logging.WARNING:
            return True
        found = self.RETRY.match(record.getMessage())
        if found is None:
            return True
        if found.group(2) in self.seen:
            return False
        self.seen.add(found.group(2))
        record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def configure(level: str = "INFO", fmt: str = "json") -> None:
    """Route both structlog and stdlib logging (kopf, aiohttp) through one JSON renderer."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(TransientRetries())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, _object_ref],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def get(logger_name: str = "meridian", /, **bound: Any) -> Any:
    """A logger with fields bound to every line (namespace/name of the object at hand)."""
    return structlog.get_logger(logger_name).bind(**bound)
