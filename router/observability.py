"""Logging: structlog, one JSON line per request (or readable console lines)."""

from __future__ import annotations

import logging
import sys
from typing import Any, BinaryIO

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
        strings = [value for value in event.values() if isinstance(value, str)]
        if not redact.finds("\x00".join(strings)):  # one search for the whole line, the usual case
            return event
        for key, value in event.items():
            if isinstance(value, str):
                event[key] = redact(value)
        return event


def configure_logging(fmt: str = "json", level: str = "info", stream: BinaryIO | None = None,
                      scrub: ScrubSecrets | None = None) -> Any:
    """The router's logger for one app: its own processors and output, and no process-wide
    structlog configuration, so two apps in one process (tests, embedding) keep their streams.

    `stream` (bytes) replaces stdout, for tests that read the log lines."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[Any] = [structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso", utc=True),
              structlog.processors.format_exc_info, scrub or ScrubSecrets()]
    if fmt == "console":
        processors = [*shared, structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())]
        logger: Any = structlog.PrintLogger(sys.stdout)
    else:
        processors = [*shared, structlog.processors.JSONRenderer(serializer=orjson.dumps)]
        logger = structlog.BytesLogger(stream or sys.stdout.buffer)
    return structlog.wrap_logger(logger, processors=processors,
                                 wrapper_class=structlog.make_filtering_bound_logger(numeric))
