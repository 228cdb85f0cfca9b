"""A fake Gemini API: `POST /v1beta/models/{model}:batchEmbedContents` with
`x-goog-api-key`, at most 100 requests each naming the same model; vectors under
`embeddings[].values` (not unit length below full size, as Gemini's); errors in
Google's shape, a bad key as 400 with `ErrorInfo.reason: API_KEY_INVALID`."""

from __future__ import annotations

from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from tests.fakes.api import Call, FakeAPI, Refused

STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
          500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
TASK_TYPES = ("RETRIEVAL_DOCUMENT", "RETRIEVAL_QUERY", "SEMANTIC_SIMILARITY", "CLASSIFICATION", "CLUSTERING",
              "QUESTION_ANSWERING", "FACT_VERIFICATION", "CODE_RETRIEVAL_QUERY")
SCALE = 3.0   # Gemini's truncated vectors are not unit length; the adapter must renormalise


class FakeGemini(FakeAPI):
    path = "/v1beta/models/{model}:batchEmbedContents"

    def __init__(self, **settings: Any) -> None:
        super().__init__(**{"models": ("gemini-embedding-001", "text-embedding-004"), "max_batch": 100,
                            **settings})

    def authorized(self, request: Request) -> bool:
        return request.headers.get("x-goog-api-key") == self.api_key

    def error(self, status: int, message: str, headers: dict | None = None, details: list | None = None) -> Response:
        if status == 401:  # Google says 400 to a bad key, and tells why in the details
            return self.error(400, "API key not valid. Please pass a valid API key.", headers,
                              [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                                "domain": "googleapis.com"}])
        if status == 429 and details is None:
            details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}]
        error = {"code": status, "message": message, "status": STATUS.get(status, "UNKNOWN")}
        if details:
            error["details"] = details
        return self.json({"error": error}, status, headers)

    def parse(self, request: Request | None, payload: Any) -> Call:
        path_model = request.path_params["model"] if request is not None else None
        requests = payload.get("requests")
        if not isinstance(requests, list):
            raise Refused(self.error(400, "Invalid JSON payload: requests must be a list"))
        texts, dims = [], set()
        for i, r in enumerate(requests):
            parts = (r.get("content") or {}).get("parts")
            if not isinstance(parts, list) or len(parts) != 1 or not isinstance(parts[0].get("text"), str):
                raise Refused(self.error(400, f"requests[{i}].content.parts must hold one text part"))
            if path_model is not None and r.get("model") != f"models/{path_model}":
                raise Refused(self.error(400, f"requests[{i}].model must be models/{path_model}"))
            if r.get("taskType", TASK_TYPES[0]) not in TASK_TYPES:
                raise Refused(self.error(400, f"Invalid value at 'requests[{i}].task_type'"))
            texts.append(parts[0]["text"])
            dims.add(r.get("outputDimensionality"))
        if len(dims) > 1:
            raise Refused(self.error(400, "outputDimensionality differs between requests"))
        return Call(path_model or "recorded", texts, dims.pop() if dims else None)

    def render(self, call: Call, vectors: list[np.ndarray], tokens: int) -> Any:
        scale = SCALE if call.dimensions is not None else 1.0
        return {"embeddings": [{"values": v * scale} for v in vectors]}
