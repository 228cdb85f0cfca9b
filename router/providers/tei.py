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

import numpy as np
import orjson

from router.config import Section
from router.errors import InvalidRequest, Overloaded, RateLimited, RouterError, UpstreamError
from router.providers.base import (
    Capabilities,
    EmbedResult,
    Inputs,
    ProviderKind,
    checked_vectors,
    retry_after_from,
)
from router.providers.http import HTTPSettings, Transport, common_settings
from router.schema import doc


@dataclass(frozen=True)
class TEISettings(HTTPSettings):
    base_url: str = field(metadata=doc("the server's root, e.g. `http://tei:8080`; `/embed` is appended",
                                       kind="URL"))
    max_batch: int = field(default=32, metadata=doc("inputs per call: TEI's `--max-client-batch-size`"))
    supports_dimensions: bool = field(default=True, metadata=doc("pass `dimensions` through (Matryoshka "
                                                                 "models, TEI >= 1.7)"))
    accepts_tokens: bool = field(default=False, metadata=doc(
        "forward token-id arrays; only when clients send ids of this model's own tokenizer"))
    normalize: bool = field(default=True, metadata=doc("ask TEI for unit-length vectors"))
    truncate: bool = field(default=False, metadata=doc("let TEI cut inputs over its max length "
                                                       "(else it refuses them: a 400 here)"))


def parse_settings(s: Section) -> TEISettings:
    return TEISettings(**common_settings(s, TEISettings), normalize=s.get("normalize", bool, True),
                       truncate=s.get("truncate", bool, False))


class TEIProvider:
    def __init__(self, name: str, settings: TEISettings) -> None:
        self.name = name
        self.settings = settings
        self._url = f"{settings.base_url}/embed"
        self._transport = Transport(name, settings, {})
        self._caps = Capabilities(settings.max_batch, settings.supports_dimensions, settings.accepts_tokens)

    def capabilities(self, model: str) -> Capabilities:
        return self._caps

    async def embed(self, inputs: Inputs, *, model: str, dimensions: int | None) -> EmbedResult:
        body: dict = {"inputs": list(inputs), "normalize": self.settings.normalize,
                      "truncate": self.settings.truncate}
        if dimensions is not None:
            body["dimensions"] = dimensions
        status, headers, content = await self._transport.post(self._url, orjson.dumps(body))
        if status != 200:
            raise self._error(status, headers, content)
        try:
            vectors = np.asarray(orjson.loads(content), dtype=np.float32)
        except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
            raise UpstreamError(f"provider {self.name!r} returned a malformed response") from exc
        vectors = checked_vectors(vectors, len(inputs), self.name)
        counted = headers.get("x-compute-tokens", "")
        if counted.isdigit():
            return EmbedResult(vectors, int(counted))
        return EmbedResult.estimated(vectors, inputs)

    def _error(self, status: int, headers: Mapping[str, str], content: bytes) -> RouterError:
        try:
            body = orjson.loads(content)
            message, kind = str(body.get("error", "")), str(body.get("error_type", "")).lower()
        except (orjson.JSONDecodeError, AttributeError):
            message, kind = content.decode("utf-8", "replace").strip()[:500], ""
        said = f"provider {self.name!r} ({kind or status}): {message or f'HTTP {status}'}"
        if kind == "overloaded":
            return RateLimited(said, retry_after=retry_after_from(headers))
        if kind == "unhealthy":
            return Overloaded(said, retry_after=retry_after_from(headers))
        if kind in ("tokenizer", "validation", "empty"):
            return InvalidRequest(said, param="input")
        if status in (401, 403):  # the server's --api-key; its message is not passed on
            return UpstreamError(f"provider {self.name!r} rejected the router's credentials "
                                 f"(upstream status {status})", code="upstream_auth_failed")
        return UpstreamError(said)

    async def aclose(self) -> None:
        await self._transport.aclose()


KIND = ProviderKind(parse_settings=parse_settings, create=TEIProvider, reference=(("", TEISettings),))
