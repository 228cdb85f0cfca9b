"""A fake OpenAI-compatible embeddings API, validating requests as the real one does.

Vectors are a deterministic function of (model, input, dimensions), so a test
can say exactly which vector answers which input. Faults are scripted per
test: `fail_next`, `delay_s`, `shuffle`, `drop_one`, or drawn at random by
`chaos` (see tests/fakes/chaos.py). It counts calls in flight and the calls
whose client went away before the answer.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.chaos import Chaos

DIMS = 16
API_KEY = "sk-upstream-secret-0123456789"


def vector_for(model: str, item: str | list[int], dimensions: int | None = None) -> np.ndarray:
    raw = item.encode() if isinstance(item, str) else np.asarray(item, dtype="<u4").tobytes()
    seed = int.from_bytes(hashlib.blake2b(model.encode() + b"\0" + raw, digest_size=8).digest(), "little")
    v = np.random.default_rng(seed).standard_normal(DIMS).astype(np.float32)
    if dimensions is not None:
        v = v[:dimensions]
    return (v / np.linalg.norm(v)).astype(np.float32)


@dataclass
class Fault:
    status: int
    body: bytes
    headers: dict = field(default_factory=dict)


@dataclass
class FakeUpstream:
    models: tuple[str, ...] = ("text-embedding-3-small", "BAAI/bge-base-en-v1.5")
    api_key: str = API_KEY
    max_batch: int = 2048
    delay_s: float = 0.0
    shuffle: bool = False
    drop_one: bool = False
    report_usage: bool = True
    faults: deque = field(default_factory=deque)
    requests: list = field(default_factory=list)
    chaos: Chaos | None = None
    in_flight: int = 0
    max_in_flight: int = 0
    abandoned: int = 0   # calls whose client hung up before the answer

    def fail_next(self, status: int, body: bytes | str | dict, headers: dict | None = None, times: int = 1) -> None:
        raw = orjson.dumps(body) if isinstance(body, dict) else body.encode() if isinstance(body, str) else body
        for _ in range(times):
            self.faults.append(Fault(status, raw, headers or {}))

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/embeddings", self._embeddings, methods=["POST"])])

    @staticmethod
    def _error(status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> Response:
        return Response(orjson.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}}),
                        status_code=status, media_type="application/json")

    async def _embeddings(self, request: Request) -> Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            response = await self._answer(request)
        finally:
            self.in_flight -= 1
        if await request.is_disconnected():
            self.abandoned += 1
        return response

    async def _answer(self, request: Request) -> Response:
        body = await request.body()
        self.requests.append({"headers": dict(request.headers), "body": orjson.loads(body)})
        # Taken before the delay: a slow request a test gave up on must not, when it wakes,
        # consume the faults the next test scripted (the fixture resets by swapping the deque).
        faults = self.faults
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if faults:
            fault = faults.popleft()
            return Response(fault.body, status_code=fault.status, headers=fault.headers)
        if self.chaos is not None and (broken := await self.chaos.fault()) is not None:
            return broken
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._error(401, f"Incorrect API key provided: {request.headers.get('authorization', '')[7:12]}***",
                               "invalid_request_error", code="invalid_api_key")
        payload = orjson.loads(body)
        model, inputs = payload.get("model"), payload.get("input")
        if model not in self.models:
            return self._error(404, f"The model `{model}` does not exist", code="model_not_found")
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or len(inputs) > self.max_batch:
            return self._error(400, f"'input' must be 1 to {self.max_batch} items", param="input")
        dims = payload.get("dimensions")
        vectors = [vector_for(model, item, dims) for item in inputs]
        as_b64 = payload.get("encoding_format") == "base64"
        data = [{"object": "embedding", "index": i,
                 "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode() if as_b64 else v.tolist()}
                for i, v in enumerate(vectors)]
        if self.shuffle or (self.chaos is not None and self.chaos.shuffle()):
            data.reverse()
        if self.drop_one:
            data.pop()
        tokens = sum(len(x) // 4 + 1 if isinstance(x, str) else len(x) for x in inputs)
        out = {"object": "list", "data": data, "model": model}
        if self.report_usage:
            out["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return Response(orjson.dumps(out), media_type="application/json")
