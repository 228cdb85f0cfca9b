"""Logging is per app: a second app in the process does not take the first one's log stream."""

from __future__ import annotations

import io

from router.observability import ScrubSecrets, configure_logging
from router.redact import Redactor


def test_two_loggers_keep_their_own_streams_and_levels():
    first, second = io.BytesIO(), io.BytesIO()
    a = configure_logging(stream=first)
    b = configure_logging(stream=second, level="warning")
    a.info("to the first")
    b.info("dropped: below warning")
    b.warning("to the second")
    a.info("still the first")
    assert first.getvalue().count(b"\n") == 2 and b"to the second" not in first.getvalue()
    assert second.getvalue().count(b"\n") == 1 and b"to the second" in second.getvalue()


def test_every_string_in_a_line_is_scrubbed_tracebacks_included():
    out = io.BytesIO()
    log = configure_logging(stream=out, scrub=ScrubSecrets(Redactor(["sk-configured-secret-1"])))
    try:
        raise ValueError("upstream said: sk-configured-secret-1")
    except ValueError:
        log.exception("failed", detail="Authorization: Bearer abcdefghijkl")
    assert b"sk-configured-secret-1" not in out.getvalue() and b"abcdefghijkl" not in out.getvalue()
    assert out.getvalue().count(b"[redacted]") == 3  # the detail, and the traceback's source line and message
