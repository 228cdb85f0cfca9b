"""A fake NuGen API (seed 004): `POST /api/v3/inference/embeddings`, answering with
`id`, `object: "embedding"`, a float `created` and `usage.total_tokens` only."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from tests.fakes.api import Call, FakeAPI, Refused

MATRYOSHKA = "nugen-flash-embed"


class FakeNuGen(FakeAPI):
    path = "/api/v3/inference/embeddings"

    def __init__(self, **settings: Any) -> None:
        super().__init__(**{"models": (MATRYOSHKA, "text-embedding-xyz"), **settings})

    def error(self, status: int, message: str, headers: dict | None = None) -> Response:
        return self.json({"detail": message}, status, headers)  # FastAPI's shape

    def parse(self, request: Request | None, payload: Any) -> Call:
        inputs = payload.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(inputs, list) or any(not isinstance(x, str) or not x for x in inputs):
            raise Refused(self.error(422, "input must be a non-empty string or a list of non-empty strings"))
        if "encoding_format" in payload:
            raise Refused(self.error(422, "extra field not permitted: encoding_format"))
        dims = payload.get("dimensions")
        if dims is not None and payload.get("model") != MATRYOSHKA:
            raise Refused(self.error(400, "dimensions is only applicable for Matryoshka embedding models"))
        return Call(payload.get("model"), inputs, dims)

    def render(self, call: Call, vectors: list[np.ndarray], tokens: int) -> Any:
        data = [{"object": "embedding", "embedding": v, "index": i} for i, v in enumerate(vectors)]
        out: dict = {"id": "embed-abc123xyz", "object": "embedding", "data": self.reversed_if_shuffled(data),
                     "model": call.model, "created": float(int(time.time()))}
        if self.report_usage:
            out["usage"] = {"total_tokens": tokens}
        return out
