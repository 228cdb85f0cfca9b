"""A fake text-embeddings-inference server (native `/embed`), validating requests as
TEI does and answering with its bare array and its `{error, error_type}` bodies."""

from __future__ import annotations

from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from tests.fakes.api import Call, FakeAPI, Refused

MODEL_ID = "BAAI/bge-base-en-v1.5"  # the one model a TEI server serves
# TEI's status for each of its error types
ERROR_TYPES = {400: "empty", 401: "unauthorized", 413: "validation", 422: "tokenizer", 424: "backend",
               429: "overloaded", 503: "unhealthy"}


class FakeTEI(FakeAPI):
    path = "/embed"

    def __init__(self, **settings: Any) -> None:
        super().__init__(**{"models": (MODEL_ID,), "max_batch": 32, **settings})

    def fail_with(self, status: int, error_type: str, message: str = "failed") -> None:
        self.fail_next(status, {"error": message, "error_type": error_type})

    def error(self, status: int, message: str, headers: dict | None = None) -> Response:
        if status == 404:  # TEI has no models by name: a 404 is its router's, with no body
            return Response(status_code=404)
        if status not in ERROR_TYPES:  # not TEI's own: a proxy in front of it answers in plain text
            return Response(f"{status}: {message}", status_code=status, headers=headers, media_type="text/plain")
        error_type = ERROR_TYPES[status]
        if status == 413:
            message = f"batch size exceeds maximum allowed batch size {self.max_batch}: {message}"
        return self.json({"error": message, "error_type": error_type}, status, headers)

    def parse(self, request: Request | None, payload: Any) -> Call:
        inputs = payload.get("inputs")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or any(isinstance(x, str) and not x for x in inputs):
            raise Refused(self.error(400, "`inputs` cannot be empty"))
        if len(inputs) > self.max_batch:
            raise Refused(self.error(413, f"batch size {len(inputs)}"))
        if not isinstance(payload.get("normalize", True), bool) or not isinstance(payload.get("truncate", False),
                                                                                  bool):
            raise Refused(self.json({"error": "normalize and truncate must be booleans",
                                     "error_type": "validation"}, 422))
        return Call(MODEL_ID, inputs, payload.get("dimensions"))

    def render(self, call: Call, vectors: list[np.ndarray], tokens: int) -> Any:
        return self.json(vectors, headers={"x-compute-tokens": str(tokens)} if self.report_usage else None)
