"""Secrets out of any text that leaves the process.

Upstreams echo what they were sent (some quote the Authorization header in
their 400 and 500 bodies), so their words are scrubbed before they reach a
client's error, a header, a log line or a metric: every secret the config
holds, and anything shaped like a bearer token or an API key, whether or
not the config knows it. Copied text is also capped in length.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "[redacted]"
MAX_COPIED_CHARS = 300   # of an upstream's message copied into an error

# Shapes of credentials whatever their owner: `Bearer …`, `Basic …`, OpenAI/Anthropic-style `sk-…`,
# Google's `AIza…`.
_SHAPES = (
    r"(?i:bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{6,}",
    r"\b(?:sk|pk|rk|api|key|tok)[-_][A-Za-z0-9_-]{6,}",
    r"\bAIza[0-9A-Za-z_-]{20,}",
)
# Also, in an upstream's words only: long random-looking runs, as API keys are (32+ letters and
# digits with both in them). Not in our own log lines, whose request ids look the same.
_UPSTREAM_SHAPES = (r"\b(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{32,}",)
# What every shape above starts with (lowercased): a text without one of them matches no shape.
_CLUES = ("bearer", "basic", "token", "sk-", "sk_", "pk-", "pk_", "rk-", "rk_", "api-", "api_", "key-", "key_",
          "tok-", "tok_", "aiza")
_MIN_SECRET = 4   # shorter configured "secrets" would mask ordinary words


class Redactor:
    """Scrubs text. Expensive work (the pattern) in `__init__`, so a call is one regex pass."""

    def __init__(self, secrets: Iterable[str] = (), *, upstream: bool = False) -> None:
        """`upstream`: for text an upstream wrote, where any key-shaped run is masked too."""
        literal = sorted({s for s in secrets if isinstance(s, str) and len(s) >= _MIN_SECRET}, key=len, reverse=True)
        self._literal = tuple(literal)
        shapes = (*_SHAPES, *_UPSTREAM_SHAPES) if upstream else _SHAPES
        self._pattern = re.compile("|".join([*(re.escape(s) for s in literal), *shapes]))

    def finds(self, text: str) -> bool:
        """Whether `text` holds anything to mask. Substring tests first: they clear an ordinary log
        line in about a microsecond, where the pattern takes several."""
        lower = text.lower()
        for clue in (*self._literal, *_CLUES):  # a loop: a generator expression costs twice as much here
            if clue in text or clue in lower:
                return self._pattern.search(text) is not None
        return False

    def __call__(self, text: str, limit: int | None = None) -> str:
        if limit is not None and len(text) > limit:
            # cut first, with a margin so a secret that straddles the cut is still recognised whole
            text = self._pattern.sub(MASK, text[: limit + 256])
            return text if len(text) <= limit else text[: limit - 1] + "…"
        return self._pattern.sub(MASK, text)


def secrets_in(settings: object) -> list[str]:
    """The secrets a provider's settings hold: its dataclass fields declared `repr=False`
    (api keys, header values), as strings."""
    import dataclasses

    found: list[str] = []
    if not dataclasses.is_dataclass(settings):
        return found
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if not f.repr:
            if isinstance(value, str):
                found.append(value)
            elif isinstance(value, dict):
                found.extend(str(v) for v in value.values())
        elif dataclasses.is_dataclass(value):
            found.extend(secrets_in(value))
        elif isinstance(value, dict):
            for item in value.values():
                found.extend(secrets_in(item))
    return found
