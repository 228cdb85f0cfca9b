"""A fake text-embeddings-inference server (native `/embed`), validating requests as
TEI does and answering with its bare array and its `{error, error_type}` bodies."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.openai_upstream import vector_for

MODEL_ID = "BAAI/bge-base-en-v1.5"  # the one model a TEI server serves


@dataclass
class FakeTEI:
    max_client_batch_size: int = 32
    api_key: str | None = None
    send_token_header: bool = True
    faults: deque = field(default_factory=deque)
    requests: list = field(default_factory=list)

    def fail_next(self, status: int, error_type: str, message: str = "failed") -> None:
        self.faults.append((status, {"error": message, "error_type": error_type}))

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/embed", self._embed, methods=["POST"])])

    @staticmethod
    def _error(status: int, error_type: str, message: str) -> Response:
        return Response(orjson.dumps({"error": message, "error_type": error_type}), status_code=status,
                        media_type="application/json")

    async def _embed(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(body)
        if self.faults:
            status, payload = self.faults.popleft()
            return Response(orjson.dumps(payload), status_code=status, media_type="application/json")
        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return Response(status_code=401)
        inputs = body.get("inputs")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs:
            return self._error(400, "empty", "`inputs` cannot be empty")
        if len(inputs) > self.max_client_batch_size:
            return self._error(413, "validation", f"batch size {len(inputs)} > maximum allowed batch size "
                                                  f"{self.max_client_batch_size}")
        if any(isinstance(x, str) and not x for x in inputs):
            return self._error(400, "empty", "`inputs` cannot be empty")
        if not isinstance(body.get("normalize", True), bool) or not isinstance(body.get("truncate", False), bool):
            return self._error(422, "validation", "normalize and truncate must be booleans")
        vectors = [vector_for(MODEL_ID, x, body.get("dimensions")).tolist() for x in inputs]
        tokens = sum(len(x) // 4 + 1 if isinstance(x, str) else len(x) for x in inputs)
        headers = {"x-compute-tokens": str(tokens)} if self.send_token_header else {}
        return Response(orjson.dumps(vectors), media_type="application/json", headers=headers)
