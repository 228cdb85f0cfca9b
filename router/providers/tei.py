"""`kind: tei` — text-embeddings-inference's native API.

    POST {base_url}/embed  {"inputs": [...], "normalize": true, "truncate": false, "dimensions": 256}
    -> [[f32, ...], ...]                      (one row per input, in order)
    errors: {"error": "...", "error_type": "overloaded" | "unhealthy" | "backend" | "tokenizer"
                                            | "validation" | "empty"}

TEI refuses more than its `--max-client-batch-size` inputs (32 by default) in
one call, so that is `max_batch`'s default. Token counts come from its
`x-compute-tokens` header when it sends one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from router.errors import InvalidRequest, Overloaded, RateLimited, RouterError, UpstreamError
from router.providers.base import DEFAULT_OPTIONS, Inputs, Options, ProviderKind, retry_after_from
from router.providers.http import (
    Answer,
    HTTPProvider,
    HTTPSettings,
    error_message,
    field_of,
    read_settings,
    status_error,
)
from router.reader import Section, doc


@dataclass(frozen=True)
class TEISettings(HTTPSettings):
    base_url: str = field(metadata=doc("the server's root, e.g. `http://tei:8080`; `/embed` is appended",
                                       kind="URL"))
    max_batch: int = field(default=32, metadata=doc("inputs per call: TEI's `--max-client-batch-size`"))
    supports_dimensions: bool = field(default=True, metadata=doc("pass `dimensions` through (Matryoshka "
                                                                 "models, TEI >= 1.7)"))
    normalize: bool = field(default=True, metadata=doc("ask TEI for unit-length vectors"))
    truncate: bool = field(default=False, metadata=doc("let TEI cut inputs over its max length "
                                                       "(else it refuses them: a 400 here)"))


def parse_settings(s: Section) -> TEISettings:
    return read_settings(s, TEISettings)


class TEIProvider(HTTPProvider):
    settings: TEISettings
    REFUSES_LONG = True   # `truncate: false` makes TEI refuse an input over its max length

    def request(self, inputs: Inputs, model: str, dimensions: int | None,
                options: Options = DEFAULT_OPTIONS) -> tuple[str, dict]:
        body: dict = {"inputs": list(inputs), "normalize": self.settings.normalize,
                      "truncate": self.settings.truncate and options.truncate}
        if dimensions is not None:
            body["dimensions"] = dimensions
        return f"{self.settings.base_url}/embed", body

    def read(self, payload: Any, headers: Mapping[str, str], n: int,
             options: Options = DEFAULT_OPTIONS) -> Answer:
        counted = headers.get("x-compute-tokens", "")
        return Answer(payload, int(counted) if counted.isdigit() else None)

    def error(self, status: int, headers: Mapping[str, str], content: bytes, model: str) -> RouterError:
        kind, message = str(field_of(content, "error_type") or "").lower(), error_message(status, content)
        said = f"provider {self.name!r} ({kind or status}): {message}"
        if kind == "overloaded":
            return RateLimited(said, retry_after=retry_after_from(headers))
        if kind == "unhealthy":
            return Overloaded(said, retry_after=retry_after_from(headers))
        if kind in ("tokenizer", "validation", "empty"):
            return InvalidRequest(said, param="input")
        if kind == "backend":  # TEI answers these with 424; the model failed, not the input
            return UpstreamError(said)
        return status_error(self.name, status, headers, f"({kind or status}) {message}", model=model)


KIND = ProviderKind(parse_settings=parse_settings, create=TEIProvider, reference=(("", TEISettings),))
