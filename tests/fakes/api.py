"""What every fake embeddings API shares: scripted faults, recordings, counts of calls
in flight, and deterministic vectors. A subclass per wire format validates requests
as that API documents and answers with its real response and error bodies.

Vectors are a deterministic function of (model, input, dimensions), so a test
can say exactly which vector answers which input. Faults are scripted per
test: `fail_next`, `delay_s`, `shuffle`, `drop_one`, `corrupt`, or drawn at
random by `chaos` (see tests/fakes/chaos.py).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

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


def quantized(vector: np.ndarray, kind: str) -> list[int]:
    """The fakes' own int8/uint8 calibration, as an API that quantises has one: scale to 127 and
    round (uint8 shifted by 128)."""
    values = np.clip(np.round(vector * 127 / np.abs(vector).max()), -127, 127).astype(int)
    return (values + 128 if kind == "uint8" else values).tolist()


def tokens_of(inputs: list) -> int:
    return sum(len(x) // 4 + 1 if isinstance(x, str) else len(x) for x in inputs)


@dataclass
class Fault:
    status: int
    body: bytes
    headers: dict = field(default_factory=dict)


@dataclass
class Call:
    """A request the fake accepted: what to embed."""

    model: str
    inputs: list
    dimensions: int | None = None


class Refused(Exception):
    """A request the API refuses, raised by `parse` with the API's own error response."""

    def __init__(self, response: Response) -> None:
        self.response = response


@dataclass
class FakeAPI:
    models: tuple[str, ...] = ("text-embedding-3-small", "BAAI/bge-base-en-v1.5")
    api_key: str | None = API_KEY
    max_batch: int = 2048
    delay_s: float = 0.0
    shuffle: bool = False        # answer in reverse order, where the format carries indexes
    drop_one: bool = False       # one vector fewer than inputs
    corrupt: str | None = None   # "nan": a non-finite value; "ragged": one vector shorter
    report_usage: bool = True
    faults: deque = field(default_factory=deque)
    requests: list = field(default_factory=list)
    chaos: Chaos | None = None
    refuse: frozenset = frozenset()   # inputs the API refuses with a 400, wherever they are in a call
    tamper: Any = None   # a function (200 body -> body) that makes the answer lie, for hostile-upstream tests
    in_flight: int = 0
    max_in_flight: int = 0
    abandoned: int = 0   # calls whose client hung up before the answer

    path: ClassVar[str]

    # --- what a wire format defines -------------------------------------------------------

    def authorized(self, request: Request) -> bool:
        return self.api_key is None or request.headers.get("authorization") == f"Bearer {self.api_key}"

    def parse(self, request: Request, payload: Any) -> Call:
        """The request's model, inputs and dimensions, or `Refused` as the API refuses it."""
        raise NotImplementedError

    def render(self, call: Call, vectors: list[np.ndarray], tokens: int) -> Any:
        """The API's 200 body (or the whole response, where headers carry part of the answer)."""
        raise NotImplementedError

    def error(self, status: int, message: str, headers: dict | None = None) -> Response:
        """The API's own error body for `status`."""
        raise NotImplementedError

    # --- shared mechanics -----------------------------------------------------------------

    def fail_next(self, status: int, body: bytes | str | dict | None = None, headers: dict | None = None,
                  times: int = 1) -> None:
        """The next calls fail with `status`: the API's own body for it unless `body` is given."""
        if body is None:
            native = self.error(status, f"scripted failure {status}", headers)
            raw, headers = native.body, {**(headers or {})}
        else:
            raw = orjson.dumps(body) if isinstance(body, dict) else body.encode() if isinstance(body, str) else body
        for _ in range(times):
            self.faults.append(Fault(status, raw, headers or {}))

    def app(self) -> Starlette:
        return Starlette(routes=[Route(self.path, self._handle, methods=["POST"])])

    def json(self, body: Any, status: int = 200, headers: dict | None = None) -> Response:
        return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status,
                        headers=headers, media_type="application/json")

    def inputs_of(self, recorded: dict) -> list:
        """The inputs of a recorded request (for tests counting chunks)."""
        return self.parse(None, recorded["body"]).inputs  # type: ignore[arg-type]

    async def _handle(self, request: Request) -> Response:
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
        raw = await request.body()
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self.error(400, "the body is not JSON")
        self.requests.append({"path": request.url.path, "query": dict(request.query_params),
                              "headers": dict(request.headers), "body": payload})
        # Taken before the delay: a slow request a test gave up on must not, when it wakes,
        # consume the faults the next test scripted (the fixture resets by swapping the deque).
        faults = self.faults
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if faults:
            fault = faults.popleft()
            return Response(fault.body, status_code=fault.status, headers=fault.headers)
        if self.chaos is not None and (broken := await self.chaos.fault(self)) is not None:
            return broken
        if not self.authorized(request):
            return self.error(401, "invalid api key")
        try:
            call = self.parse(request, payload)
        except Refused as refused:
            return refused.response
        if call.model not in self.models:
            return self.error(404, f"model {call.model!r} not found")
        if call.dimensions is not None and not (isinstance(call.dimensions, int) and 1 <= call.dimensions <= DIMS):
            return self.error(400, f"dimensions must be from 1 to {DIMS}")
        if refused := [x for x in call.inputs if isinstance(x, str) and x in self.refuse]:
            return self.error(400, f"input {refused[0]!r} violates the usage policy")
        if not call.inputs or len(call.inputs) > self.max_batch:
            return self.error(400, f"between 1 and {self.max_batch} inputs per call, got {len(call.inputs)}")
        vectors = [vector_for(call.model, item, call.dimensions) for item in call.inputs]
        if self.drop_one:
            vectors.pop()
        if self.corrupt == "nan":
            vectors[0] = np.full_like(vectors[0], np.nan)
        elif self.corrupt == "ragged":
            vectors[-1] = vectors[-1][:-1]
        answer = self.render(call, vectors, tokens_of(call.inputs))
        if self.tamper is not None and not isinstance(answer, Response):
            answer = self.tamper(orjson.loads(orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)))
        return answer if isinstance(answer, Response) else self.json(answer)

    def reversed_if_shuffled(self, items: list) -> list:
        if self.shuffle or (self.chaos is not None and self.chaos.shuffle()):
            return items[::-1]
        return items
