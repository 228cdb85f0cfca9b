"""`kind: gemini` — Google's Gemini API (generativelanguage.googleapis.com).

    POST {base_url}/models/{model}:batchEmbedContents        x-goog-api-key: KEY
         {"requests": [{"model": "models/{model}", "content": {"parts": [{"text"}]},
                        "taskType", "outputDimensionality"}]}
    -> {"embeddings": [{"values": [...]}]}                     (no usage: estimated)
    errors: {"error": {"code", "message", "status", "details": [RetryInfo, ErrorInfo]}}

At most 100 requests a call. Google answers a bad key with 400 and
`ErrorInfo.reason: API_KEY_INVALID`, and a quota with 429 and
`RetryInfo.retryDelay`; both are read from `details`. Below full size its
vectors are not unit length, so they are renormalised (`normalize`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import numpy as np

from router.errors import RouterError
from router.providers.base import DEFAULT_OPTIONS, Inputs, Options, ProviderKind, duration_s
from router.providers.http import (
    Answer,
    HTTPProvider,
    HTTPSettings,
    error_message,
    field_of,
    read_settings,
    status_error,
)
from router.reader import Section, choices, doc, one_of

TASK_TYPES = ("RETRIEVAL_DOCUMENT", "RETRIEVAL_QUERY", "SEMANTIC_SIMILARITY", "CLASSIFICATION", "CLUSTERING",
              "QUESTION_ANSWERING", "FACT_VERIFICATION", "CODE_RETRIEVAL_QUERY")
# A request's `input_type` (the router's words) as Gemini's `taskType`.
_TASK_OF = {"search_document": "RETRIEVAL_DOCUMENT", "search_query": "RETRIEVAL_QUERY",
            "classification": "CLASSIFICATION", "clustering": "CLUSTERING"}
_KEY_REFUSED = ("API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED", "API_KEY_HTTP_REFERRER_BLOCKED")


@dataclass(frozen=True)
class GeminiSettings(HTTPSettings):
    base_url: str = field(default="https://generativelanguage.googleapis.com/v1beta", metadata=doc(
        "the API's versioned root; `/models/{model}:batchEmbedContents` is appended", kind="URL"))
    api_key: str | None = field(default=None, repr=False, metadata=doc(
        "sent as `x-goog-api-key`; write `${ENV_VAR}`, never the key", default="none"))
    max_batch: int = field(default=100, metadata=doc("texts per call (Google's limit)"))
    task_type: str | None = field(default=None, metadata=doc(
        "`taskType` on every text where the request has no `input_type` (which wins); unset leaves it to "
        "the model", kind=choices(*TASK_TYPES), default="none",
        check=one_of(*TASK_TYPES)))
    normalize: bool = field(default=True, metadata=doc(
        "renormalise to unit length (Gemini's vectors are not, below full size)"))


def parse_settings(s: Section) -> GeminiSettings:
    return read_settings(s, GeminiSettings)


class GeminiProvider(HTTPProvider):
    settings: GeminiSettings
    TAKES_INPUT_TYPE = True

    def headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.settings.api_key} if self.settings.api_key else {}

    def request(self, inputs: Inputs, model: str, dimensions: int | None,
                options: Options = DEFAULT_OPTIONS) -> tuple[str, dict]:
        model = model.removeprefix("models/")
        each: dict = {"model": f"models/{model}"}
        if task_type := (_TASK_OF.get(options.input_type) if options.input_type else None) or self.settings.task_type:
            each["taskType"] = task_type
        if dimensions is not None:
            each["outputDimensionality"] = dimensions
        requests = [{**each, "content": {"parts": [{"text": text}]}} for text in inputs]
        return f"{self.settings.base_url}/models/{quote(model, safe='')}:batchEmbedContents", {"requests": requests}

    def read(self, payload: Any, headers: Mapping[str, str], n: int,
             options: Options = DEFAULT_OPTIONS) -> Answer:
        vectors = np.asarray([e["values"] for e in payload["embeddings"]], dtype=np.float32)
        if self.settings.normalize and vectors.ndim == 2:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return Answer(vectors)

    def error(self, status: int, headers: Mapping[str, str], content: bytes, model: str) -> RouterError:
        details = field_of(content, "error", "details")
        details = [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []
        if any(d.get("reason") in _KEY_REFUSED for d in details):
            status = 401
        delay = next((duration_s(d.get("retryDelay")) for d in details if "retryDelay" in d), None)
        return status_error(self.name, status, headers, error_message(status, content), model=model,
                            retry_after=delay)


KIND = ProviderKind(parse_settings=parse_settings, create=GeminiProvider, reference=(("", GeminiSettings),))
