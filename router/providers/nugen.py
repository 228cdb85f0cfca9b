"""`kind: nugen` — NuGen's embeddings API (seed 004).

    POST {base_url}/api/v3/inference/embeddings  {"model", "input", "dimensions"}
    -> {"id", "object": "embedding", "data": [{"index", "embedding"}], "model",
        "created": 1705329600.0, "usage": {"total_tokens"}}

Close to OpenAI's, but at its own path, with no `encoding_format`, a float
`created` and only `total_tokens`; `dimensions` only on its Matryoshka models.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from router.providers.base import DEFAULT_OPTIONS, Inputs, Options, ProviderKind
from router.providers.http import Answer, HTTPProvider, HTTPSettings, read_settings
from router.providers.openai import read_data
from router.reader import Section, doc


@dataclass(frozen=True)
class NuGenSettings(HTTPSettings):
    base_url: str = field(default="https://api.nugen.in", metadata=doc(
        "the API's root; `/api/v3/inference/embeddings` is appended", kind="URL"))
    supports_dimensions: bool = field(default=False, metadata=doc(
        "the models behind it are Matryoshka models that take `dimensions`"))


def parse_settings(s: Section) -> NuGenSettings:
    return read_settings(s, NuGenSettings)


class NuGenProvider(HTTPProvider):
    def request(self, inputs: Inputs, model: str, dimensions: int | None,
                options: Options = DEFAULT_OPTIONS) -> tuple[str, dict]:
        body: dict = {"model": model, "input": list(inputs)}
        if dimensions is not None:
            body["dimensions"] = dimensions
        return f"{self.settings.base_url}/api/v3/inference/embeddings", body

    def read(self, payload: Any, headers: Mapping[str, str], n: int,
             options: Options = DEFAULT_OPTIONS) -> Answer:
        return read_data(payload, n, self.name)


KIND = ProviderKind(parse_settings=parse_settings, create=NuGenProvider, reference=(("", NuGenSettings),))
