"""`kind: openai` — every OpenAI-compatible embeddings API, one class.

OpenAI, Together, vLLM, TEI's /v1, Infinity and the like differ only in
options (dimensions, token input, base64), so they share this adapter. Its
upstream's failures are translated here, on status codes and JSON fields,
into the router's error hierarchy.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import orjson

from router.config import Section, one_of
from router.errors import (
    InvalidRequest,
    ModelNotFound,
    Overloaded,
    RateLimited,
    RouterError,
    UpstreamError,
    UpstreamTimeout,
)
from router.providers.base import (
    Capabilities,
    EmbedResult,
    Inputs,
    ProviderKind,
    checked_vectors,
    retry_after_from,
)
from router.providers.http import HTTPSettings, Transport, common_settings
from router.schema import choices, doc


@dataclass(frozen=True)
class OpenAISettings(HTTPSettings):
    base_url: str = field(metadata=doc("the API's base, e.g. `https://api.together.xyz/v1`; `/embeddings` is "
                                       "appended", kind="URL"))
    encoding: str = field(default="float", metadata=doc("what to ask the upstream for; base64 is smaller "
                                                        "and faster to parse", kind=choices("float", "base64")))
    headers: dict = field(default_factory=dict, repr=False, metadata=doc("extra headers on every call",
                                                                         kind="mapping"))
    extra_body: dict = field(default_factory=dict, metadata=doc("extra body fields on every call",
                                                                kind="mapping"))


def parse_settings(s: Section) -> OpenAISettings:
    return OpenAISettings(
        **common_settings(s, OpenAISettings),
        encoding=s.get("encoding", str, "float", check=one_of("float", "base64")),
        headers={str(k): str(v) for k, v in s.get("headers", dict, {}).items()},
        extra_body=dict(s.get("extra_body", dict, {})),
    )


class OpenAIProvider:
    def __init__(self, name: str, settings: OpenAISettings) -> None:
        self.name = name
        self.settings = settings
        self._url = f"{settings.base_url}/embeddings"
        self._transport = Transport(name, settings, settings.headers)
        self._caps = Capabilities(settings.max_batch, settings.supports_dimensions, settings.accepts_tokens)

    def capabilities(self, model: str) -> Capabilities:
        return self._caps

    async def embed(self, inputs: Inputs, *, model: str, dimensions: int | None) -> EmbedResult:
        body = {**self.settings.extra_body, "model": model, "input": list(inputs),
                "encoding_format": self.settings.encoding}
        if dimensions is not None:
            body["dimensions"] = dimensions
        status, headers, content = await self._transport.post(self._url, orjson.dumps(body))
        if status != 200:
            raise self._error(status, headers, content, model)
        return self._result(content, len(inputs), inputs)

    def _result(self, content: bytes, n: int, inputs: Inputs) -> EmbedResult:
        try:
            payload = orjson.loads(content)
            data = payload["data"]
            if len(data) != n:
                raise UpstreamError(f"provider {self.name!r} returned {len(data)} vectors for {n} inputs")
            if all("index" in item for item in data):
                data = sorted(data, key=lambda item: item["index"])
                if [item["index"] for item in data] != list(range(n)):
                    raise UpstreamError(f"provider {self.name!r} returned indexes that do not match the inputs")
            embeddings = [item["embedding"] for item in data]
            if embeddings and isinstance(embeddings[0], str):
                vectors = np.stack([np.frombuffer(base64.b64decode(e), dtype="<f4") for e in embeddings])
            else:
                vectors = np.asarray(embeddings, dtype=np.float32)
            usage = payload.get("usage") or {}
            tokens = usage.get("prompt_tokens", usage.get("total_tokens"))
        except RouterError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise UpstreamError(f"provider {self.name!r} returned a malformed response") from exc
        vectors = checked_vectors(vectors.astype(np.float32, copy=False), n, self.name)
        if isinstance(tokens, int) and not isinstance(tokens, bool):
            return EmbedResult(vectors, tokens)
        return EmbedResult.estimated(vectors, inputs)

    def _error(self, status: int, headers: Mapping[str, str], content: bytes, model: str) -> RouterError:
        message = _upstream_message(status, content)
        if status in (401, 403):
            # Our credential is wrong: the client can do nothing about it, and the
            # upstream's message may quote part of the key, so it is not passed on.
            return UpstreamError(f"provider {self.name!r} rejected the router's credentials "
                                 f"(upstream status {status})", code="upstream_auth_failed")
        if status == 404:
            return ModelNotFound(f"provider {self.name!r} has no model {model!r}: {message}", param="model")
        if status == 429:
            return RateLimited(f"provider {self.name!r} is rate limiting: {message}",
                               retry_after=retry_after_from(headers))
        if status == 503:
            return Overloaded(f"provider {self.name!r} is overloaded: {message}",
                              retry_after=retry_after_from(headers))
        if status == 504:
            return UpstreamTimeout(f"provider {self.name!r} timed out: {message}")
        if 400 <= status < 500:
            return InvalidRequest(f"provider {self.name!r} refused the request: {message}",
                                  param=_upstream_param(content))
        return UpstreamError(f"provider {self.name!r} failed with status {status}: {message}")

    async def aclose(self) -> None:
        await self._transport.aclose()


def _upstream_message(status: int, content: bytes) -> str:
    """The upstream's own words, from ErrorData, a bare string, or plain text."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        text = content.decode("utf-8", "replace").strip()
        return text[:500] if text else f"HTTP {status}"
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            error = error.get("message") or error.get("detail") or error.get("msg") or error
        body = error if isinstance(error, str) else body.get("message") or body.get("detail") or body
    return (body if isinstance(body, str) else orjson.dumps(body).decode())[:500]


def _upstream_param(content: bytes) -> str | None:
    try:
        error = orjson.loads(content).get("error")
        param = error.get("param") if isinstance(error, dict) else None
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return param if isinstance(param, str) else None


KIND = ProviderKind(parse_settings=parse_settings, create=OpenAIProvider, reference=(("", OpenAISettings),))
