"""A fake Ollama server: `POST /api/embed` `{model, input, truncate, dimensions}` ->
`{model, embeddings, prompt_eval_count}`; errors `{"error": "..."}`, 404 for a model
that is not pulled."""

from __future__ import annotations

from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from tests.fakes.api import Call, FakeAPI, Refused


class FakeOllama(FakeAPI):
    path = "/api/embed"

    def __init__(self, **settings: Any) -> None:
        # The key is an authenticating proxy's: Ollama itself has none.
        super().__init__(**{"models": ("nomic-embed-text", "all-minilm"), **settings})

    def error(self, status: int, message: str, headers: dict | None = None) -> Response:
        if status == 404:
            message = f"model {message!r} not found, try pulling it first"
        return self.json({"error": message}, status, headers)

    def parse(self, request: Request | None, payload: Any) -> Call:
        inputs = payload.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(inputs, list) or any(not isinstance(x, str) for x in inputs):
            raise Refused(self.error(400, "invalid input type"))
        if not isinstance(payload.get("truncate", True), bool):
            raise Refused(self.error(400, "json: cannot unmarshal truncate into a bool"))
        return Call(payload.get("model"), inputs, payload.get("dimensions"))

    def render(self, call: Call, vectors: list[np.ndarray], tokens: int) -> Any:
        out: dict = {"model": call.model, "embeddings": vectors, "total_duration": 14143917,
                     "load_duration": 1019500}
        if self.report_usage:
            out["prompt_eval_count"] = tokens
        return out
