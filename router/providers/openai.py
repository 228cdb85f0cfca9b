"""`kind: openai` — every OpenAI-compatible embeddings API, one class.

    POST {base_url}/embeddings  {"model", "input", "encoding_format", "dimensions"}
    -> {"data": [{"index", "embedding"}], "usage": {"prompt_tokens"}}

OpenAI, Together, vLLM, TEI's /v1, Infinity, Mistral, Jina, Voyage,
DeepInfra, Fireworks and OpenRouter differ only in options: what
`dimensions` is called (`dimensions_field`; Voyage and Mistral say
`output_dimension`), whether `encoding_format` may be sent, fixed body
fields (Jina's `task`, Voyage's `input_type`), and whether token ids mean
the same to them as to the client. Error bodies come as ErrorData, a bare
JSON string, `{"detail"}` or plain text; all are read by status.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np
import simdjson

from router.errors import RouterError, UpstreamError
from router.providers.base import DEFAULT_OPTIONS, Inputs, Options, ProviderKind
from router.providers.http import (
    Answer,
    HTTPProvider,
    HTTPSettings,
    Poster,
    error_message,
    field_of,
    read_settings,
    status_error,
)
from router.reader import Section, choices, doc, one_of

OPENAI_HOST = "api.openai.com"
ENCODINGS = ("float", "base64", "none")   # reads token ids with the tokenizer OpenAI's clients encode with


@dataclass(frozen=True)
class OpenAISettings(HTTPSettings):
    base_url: str = field(metadata=doc("the API's base, e.g. `https://api.together.xyz/v1`; `/embeddings` is "
                                       "appended", kind="URL"))
    accepts_tokens: bool = field(default=False, metadata=doc(
        "forward token-id arrays as they are: only where the upstream reads them with the tokenizer "
        "clients encoded them with", default=f"`true` for {OPENAI_HOST}, else `false`"))
    encoding: str = field(default="float", metadata=doc(
        "`encoding_format` to ask for: base64 is smaller and faster to parse; `none` leaves it out, for "
        "APIs that refuse it (Jina)", kind=choices(*ENCODINGS), check=one_of(*ENCODINGS)))
    dimensions_field: str = field(default="dimensions", metadata=doc(
        "what the API calls `dimensions` (Voyage, Mistral: `output_dimension`)"))
    headers: dict = field(default_factory=dict, repr=False, metadata=doc("extra headers on every call",
                                                                         kind="mapping"))
    extra_body: dict = field(default_factory=dict, metadata=doc(
        "fixed body fields on every call: Jina's `task`, Voyage's `input_type`", kind="mapping"))
    quantizes: tuple[str, ...] = field(default=(), metadata=doc(
        "output types the API returns itself when asked with `output_dtype` (Voyage: `[int8, uint8]`); "
        "clients asking for them get its integers", kind="list of int8, uint8", default="none",
        check=lambda kinds: None if set(kinds) <= {"int8", "uint8"} else "may hold int8 and uint8 only"))


OA = TypeVar("OA", bound=OpenAISettings)


def parse_settings(s: Section) -> OpenAISettings:
    settings = finish(read_settings(s, OpenAISettings))
    if s.raw.get("accepts_tokens") is None:
        settings = replace(settings, accepts_tokens=urlsplit(settings.base_url).hostname == OPENAI_HOST)
    return settings


def finish(settings: OA) -> OA:
    """Header values as strings, whatever YAML typed them as (`x-version: 2` is the number 2)."""
    return replace(settings, headers={str(k): str(v) for k, v in settings.headers.items()})


class OpenAIProvider(HTTPProvider):
    settings: OpenAISettings

    def __init__(self, name: str, settings: OpenAISettings, transport: Poster | None = None) -> None:
        super().__init__(name, settings, transport)
        self._caps = replace(self._caps, quantizes=settings.quantizes)

    def headers(self) -> dict[str, str]:
        return {**super().headers(), **self.settings.headers}

    def request(self, inputs: Inputs, model: str, dimensions: int | None,
                options: Options = DEFAULT_OPTIONS) -> tuple[str, dict]:
        body = {**self.settings.extra_body, "model": model, "input": list(inputs)}
        if self.settings.encoding != "none":
            body["encoding_format"] = self.settings.encoding
        if dimensions is not None:
            body[self.settings.dimensions_field] = dimensions
        if options.dtype != "float":
            body["output_dtype"] = options.dtype
        return f"{self.settings.base_url}/embeddings", body

    def answer(self, content: bytes, headers: Mapping[str, str], n: int,
               options: Options = DEFAULT_OPTIONS) -> Answer:
        fast = read_floats(content, n) if options.dtype == "float" else None
        return fast if fast is not None else super().answer(content, headers, n, options)

    def read(self, payload: Any, headers: Mapping[str, str], n: int,
             options: Options = DEFAULT_OPTIONS) -> Answer:
        return read_data(payload, n, self.name, options.dtype)

    def error(self, status: int, headers: Mapping[str, str], content: bytes, model: str) -> RouterError:
        param = field_of(content, "error", "param")
        return status_error(self.name, status, headers, error_message(status, content), model=model,
                            param=param if isinstance(param, str) else None)


def read_data(payload: Any, n: int, provider: str, dtype: str = "float") -> Answer:
    """OpenAI's `data` list (numbers, or base64 of little-endian float32, or of the `dtype`'s bytes),
    put in index order, and its usage."""
    data = payload["data"]
    if len(data) != n:
        raise UpstreamError(f"provider {provider!r} returned {len(data)} vectors for {n} inputs")
    indexed = sum("index" in item for item in data)
    if indexed:
        # An index on some items only would leave the others' order a guess: refuse it.
        indexes = [item.get("index") for item in data]
        if indexed != n or sorted(i for i in indexes if type(i) is int) != list(range(n)):
            raise UpstreamError(f"provider {provider!r} returned indexes that do not match the inputs")
        data = sorted(data, key=lambda item: item["index"])
    embeddings = [item["embedding"] for item in data]
    if embeddings and isinstance(embeddings[0], str):
        raw = {"float": "<f4", "int8": "i1", "uint8": "u1"}[dtype]
        vectors: Any = np.stack([np.frombuffer(base64.b64decode(e), dtype=raw) for e in embeddings])
    else:
        vectors = embeddings
    usage = payload.get("usage") or {}
    return Answer(vectors, usage.get("prompt_tokens", usage.get("total_tokens")))


def read_floats(content: bytes, n: int) -> Answer | None:
    """The usual answer (n float arrays, indexed in order or not at all), read without making a Python
    float per number: simdjson parses the arrays straight into buffers (2.5x less CPU than orjson and
    np.asarray on 32 x 384 floats). None for anything else, which `read_data` then reads or refuses.

    simdjson flattens nested arrays into a buffer, so this takes only answers with no '[' beyond
    `data`'s and each embedding's."""
    if content.count(b"[") != n + 1:
        return None
    try:
        answer: Any = simdjson.Parser().parse(content)  # a parser per call: one cannot be reused while parts live
        data = answer["data"]
        if len(data) != n:
            return None
        rows, indexes = [], []
        for item in data:
            embedding = item["embedding"]
            if not isinstance(embedding, simdjson.Array):
                return None
            rows.append(np.frombuffer(embedding.as_buffer(of_type="d"), dtype=np.float64))
            indexes.append(item.get("index"))
        if indexes != list(range(n)) and indexes != [None] * n:
            return None
        usage = answer.get("usage") or {}
        tokens = usage.get("prompt_tokens", usage.get("total_tokens"))
        return Answer(np.stack(rows), tokens if isinstance(tokens, int) else None)
    except (ValueError, TypeError, RuntimeError, KeyError, IndexError, AttributeError):
        return None


KIND = ProviderKind(parse_settings=parse_settings, create=OpenAIProvider, reference=(("", OpenAISettings),))
