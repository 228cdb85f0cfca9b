"""`kind: cohere` — Cohere's Embed API v2.

    POST {base_url}/v2/embed  {"model", "texts", "input_type", "embedding_types": [TYPE],
                               "output_dimension", "truncate"}
    -> {"id", "embeddings": {TYPE: [[...]]}, "texts", "meta": {"billed_units": {"input_tokens"}}}
    errors: {"id", "message"}; 498 is a refused key, like 401

At most 96 texts a call. `input_type` is required by v3+ models: the request's, else the
deployment's (a query and a document embed differently). TYPE is float, or int8/uint8
when a client asks for Cohere's own quantisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from router.errors import RouterError
from router.protocol import INPUT_TYPES
from router.providers.base import DEFAULT_OPTIONS, Inputs, Options, ProviderKind
from router.providers.http import (
    Answer,
    HTTPProvider,
    HTTPSettings,
    error_message,
    read_settings,
    status_error,
)
from router.reader import Section, choices, doc, one_of

TRUNCATE = ("NONE", "START", "END")


@dataclass(frozen=True)
class CohereSettings(HTTPSettings):
    base_url: str = field(default="https://api.cohere.com", metadata=doc(
        "the API's root; `/v2/embed` is appended", kind="URL"))
    max_batch: int = field(default=96, metadata=doc("texts per call (Cohere's limit)"))
    supports_dimensions: bool = field(default=False, metadata=doc(
        "send `output_dimension`: embed-v4.0 takes 256, 512, 1024 or 1536"))
    input_type: str = field(default="search_document", metadata=doc(
        "what the texts are for, where the request does not say (a request's `input_type` wins)",
        kind=choices(*INPUT_TYPES),
        check=one_of(*INPUT_TYPES)))
    truncate: str = field(default="END", metadata=doc("texts over the model's limit: cut the start or end, "
                                                      "or `NONE` to refuse them", kind=choices(*TRUNCATE),
                                                      check=one_of(*TRUNCATE)))


def parse_settings(s: Section) -> CohereSettings:
    return read_settings(s, CohereSettings)


class CohereProvider(HTTPProvider):
    settings: CohereSettings
    TAKES_INPUT_TYPE = True
    REFUSES_LONG = True
    QUANTIZES = ("int8", "uint8")

    def request(self, inputs: Inputs, model: str, dimensions: int | None,
                options: Options = DEFAULT_OPTIONS) -> tuple[str, dict]:
        body: dict = {"model": model, "texts": list(inputs),
                      "input_type": options.input_type or self.settings.input_type,
                      "embedding_types": [options.dtype],
                      "truncate": self.settings.truncate if options.truncate else "NONE"}
        if dimensions is not None:
            body["output_dimension"] = dimensions
        return f"{self.settings.base_url}/v2/embed", body

    def read(self, payload: Any, headers: Mapping[str, str], n: int,
             options: Options = DEFAULT_OPTIONS) -> Answer:
        billed = (payload.get("meta") or {}).get("billed_units") or {}
        return Answer(payload["embeddings"][options.dtype], billed.get("input_tokens"))

    def error(self, status: int, headers: Mapping[str, str], content: bytes, model: str) -> RouterError:
        return status_error(self.name, 401 if status == 498 else status, headers, error_message(status, content),
                            model=model)


KIND = ProviderKind(parse_settings=parse_settings, create=CohereProvider, reference=(("", CohereSettings),))
