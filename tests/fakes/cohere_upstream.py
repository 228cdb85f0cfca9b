"""A fake Cohere Embed API v2 (`POST /v2/embed`): `texts`, a required `input_type`,
`embedding_types`, at most 96 texts; vectors under `embeddings.float`, usage under
`meta.billed_units`; errors `{"id", "message"}`, a refused key as 401 or 498."""

from __future__ import annotations

from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from tests.fakes.api import Call, FakeAPI, Refused, quantized

INPUT_TYPES = ("search_document", "search_query", "classification", "clustering", "image")
OUTPUT_DIMENSIONS = (4, 8)   # embed-v4.0 takes 256, 512, 1024, 1536: scaled to the fake's 16-dim vectors
V4 = "embed-v4.0"


class FakeCohere(FakeAPI):
    path = "/v2/embed"

    def __init__(self, **settings: Any) -> None:
        super().__init__(**{"models": ("embed-english-v3.0", V4), "max_batch": 96, **settings})

    def error(self, status: int, message: str, headers: dict | None = None) -> Response:
        return self.json({"id": "7c4f1e2a-0000-4000-8000-000000000000", "message": message}, status, headers)

    def parse(self, request: Request | None, payload: Any) -> Call:
        texts = payload.get("texts")
        if not isinstance(texts, list) or any(not isinstance(t, str) for t in texts):
            raise Refused(self.error(400, "invalid request: texts must be a list of strings"))
        if payload.get("input_type") not in INPUT_TYPES:
            raise Refused(self.error(400, "invalid request: input_type is required for embed-v3 and newer"))
        types = payload.get("embedding_types", ["float"])
        if not isinstance(types, list) or not types or not set(types) <= {"float", "int8", "uint8"}:
            raise Refused(self.error(400, "invalid request: embedding_types must be float, int8 or uint8 here"))
        if payload.get("truncate", "END") not in ("NONE", "START", "END"):
            raise Refused(self.error(400, "invalid request: truncate must be NONE, START or END"))
        dims = payload.get("output_dimension")
        if dims is not None and (payload.get("model") != V4 or dims not in OUTPUT_DIMENSIONS):
            raise Refused(self.error(400, f"invalid request: output_dimension {dims} is not supported"))
        return Call(payload.get("model"), texts, dims)

    def render(self, call: Call, vectors: list[np.ndarray], tokens: int) -> Any:
        meta: dict = {"api_version": {"version": "2"}}
        if self.report_usage:
            meta["billed_units"] = {"input_tokens": tokens}
        types = self.requests[-1]["body"].get("embedding_types", ["float"])
        by_type = {kind: vectors if kind == "float" else [quantized(v, kind) for v in vectors] for kind in types}
        return {"id": "b6f5", "embeddings": by_type, "texts": call.inputs, "meta": meta,
                "response_type": "embeddings_by_type"}

