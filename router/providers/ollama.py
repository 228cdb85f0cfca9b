"""`kind: ollama` — Ollama's native embeddings API.

    POST {base_url}/api/embed  {"model", "input": [...], "truncate", "dimensions", "keep_alive"}
    -> {"model", "embeddings": [[...]], "prompt_eval_count"}
    errors: {"error": "..."}  (404: the model is not pulled)

Ollama runs one model on one machine, so calls in flight are few by default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from router.providers.base import DEFAULT_OPTIONS, Inputs, Options, ProviderKind
from router.providers.http import Answer, HTTPProvider, HTTPSettings, read_settings
from router.reader import Section, doc


@dataclass(frozen=True)
class OllamaSettings(HTTPSettings):
    base_url: str = field(default="http://localhost:11434", metadata=doc(
        "the server's root; `/api/embed` is appended", kind="URL"))
    api_key: str | None = field(default=None, repr=False, metadata=doc(
        "sent as `Authorization: Bearer`, for an Ollama behind an authenticating proxy", default="none"))
    max_batch: int = field(default=256, metadata=doc("inputs per call"))
    max_concurrency: int = field(default=4, metadata=doc("calls in flight to this server"))
    truncate: bool = field(default=True, metadata=doc("let Ollama cut inputs over the model's context "
                                                      "(else it refuses them)"))
    keep_alive: str | None = field(default=None, metadata=doc(
        "how long Ollama keeps the model loaded after a call, e.g. `30m`", default="Ollama's (5m)"))


def parse_settings(s: Section) -> OllamaSettings:
    return read_settings(s, OllamaSettings)


class OllamaProvider(HTTPProvider):
    settings: OllamaSettings
    REFUSES_LONG = True   # `truncate: false` makes Ollama refuse an input over the context

    def request(self, inputs: Inputs, model: str, dimensions: int | None,
                options: Options = DEFAULT_OPTIONS) -> tuple[str, dict]:
        body: dict = {"model": model, "input": list(inputs),
                      "truncate": self.settings.truncate and options.truncate}
        if dimensions is not None:
            body["dimensions"] = dimensions
        if self.settings.keep_alive:
            body["keep_alive"] = self.settings.keep_alive
        return f"{self.settings.base_url}/api/embed", body

    def read(self, payload: Any, headers: Mapping[str, str], n: int,
             options: Options = DEFAULT_OPTIONS) -> Answer:
        return Answer(payload["embeddings"], payload.get("prompt_eval_count"))


KIND = ProviderKind(parse_settings=parse_settings, create=OllamaProvider, reference=(("", OllamaSettings),))
