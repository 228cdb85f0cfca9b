"""A fake OpenAI-compatible embeddings API (`POST /v1/embeddings`), validating requests
as OpenAI documents and answering with its `data` list and ErrorData bodies."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from tests.fakes.api import API_KEY, DIMS, Call, FakeAPI, Fault, Refused, quantized, vector_for

__all__ = ["API_KEY", "DIMS", "FakeUpstream", "Fault", "vector_for"]


class FakeUpstream(FakeAPI):
    path = "/v1/embeddings"
    dimensions_field = "dimensions"

    def error(self, status: int, message: str, headers: dict | None = None, param: str | None = None) -> Response:
        type_ = {401: "invalid_request_error", 429: "requests", 404: "invalid_request_error"}.get(
            status, "server_error" if status >= 500 else "invalid_request_error")
        code = {401: "invalid_api_key", 404: "model_not_found"}.get(status)
        return self.json({"error": {"message": message, "type": type_, "param": param, "code": code}}, status,
                         headers)

    def authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.api_key}"

    def parse(self, request: Request | None, payload: Any) -> Call:
        inputs = payload.get("input")
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        if not isinstance(inputs, list):
            raise Refused(self.error(400, "'input' must be a string or an array", param="input"))
        if payload.get("encoding_format") not in (None, "float", "base64"):
            raise Refused(self.error(400, "'encoding_format' must be float or base64", param="encoding_format"))
        return Call(self.model_of(request, payload), inputs, payload.get(self.dimensions_field))

    def model_of(self, request: Request | None, payload: Any) -> str:
        return payload.get("model")

    def render(self, call: Call, vectors: list[np.ndarray], tokens: int) -> Any:
        body = self.requests[-1]["body"]
        as_b64 = body.get("encoding_format") == "base64"
        dtype = body.get("output_dtype") or "float"  # Voyage's: int8/uint8 by the API's own calibration
        rows = vectors if dtype == "float" else [np.asarray(quantized(v, dtype), dtype=dtype) for v in vectors]
        data = [{"object": "embedding", "index": i,
                 "embedding": base64.b64encode(v.astype("<f4" if dtype == "float" else dtype).tobytes()).decode()
                 if as_b64 else v}
                for i, v in enumerate(rows)]
        out: dict = {"object": "list", "data": self.reversed_if_shuffled(data), "model": call.model}
        if self.report_usage:
            out["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return out
