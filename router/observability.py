"""Logging: structlog, one JSON line per request (or readable console lines)."""

from __future__ import annotations

import logging
import sys
from typing import BinaryIO

import orjson
import structlog

from router.redact import Redactor


class ScrubSecrets:
    """A structlog processor: every string in a log line, the rendered traceback included, is
    scrubbed of the config's secrets. `redactor` is replaced when a reload changes them."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        self.redactor = redactor or Redactor()

    def __call__(self, logger: object, method: str, event: dict) -> dict:
        redact = self.redactor
        for key, value in event.items():
            if isinstance(value, str):
                event[key] = redact(value)
        return event


def configure_logging(fmt: str = "json", level: str = "info", stream: BinaryIO | None = None,
                      scrub: ScrubSecrets | None = None) -> structlog.typing.FilteringBoundLogger:
    """Configure structlog for this process and return the router's logger.

    `stream` (bytes) replaces stdout, for tests that read the log lines."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared = [structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso", utc=True),
              structlog.processors.format_exc_info, scrub or ScrubSecrets()]
    if fmt == "console":
        processors = [*shared, structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())]
        factory = structlog.PrintLoggerFactory(sys.stdout)
    else:
        processors = [*shared, structlog.processors.JSONRenderer(serializer=orjson.dumps)]
        factory = structlog.BytesLoggerFactory(stream or sys.stdout.buffer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
    return structlog.get_logger("router")
