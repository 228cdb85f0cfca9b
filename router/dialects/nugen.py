"""NuGen: `POST /api/v3/inference/embeddings` (seed 004): `model`, `input` (a string or strings),
`dimensions`; answers `{"id", "object": "embedding", "data", "model", "created" (a float),
"usage": {"total_tokens"}}`."""

from __future__ import annotations

import time
import uuid

import numpy as np
import orjson

from router import protocol
from router.dialects import Context, Dialect
from router.outcome import Trace


def parse(body: bytes, context: Context) -> protocol.EmbeddingRequest:
    payload = protocol.json_object(body)
    model = protocol.model_of(payload)
    inputs, tokens = protocol.inputs_of(payload.get("input"), context.max_inputs)
    return protocol.EmbeddingRequest(model, inputs, tokens, dimensions=protocol.dimensions_of(payload, "dimensions"))


def encode(vectors: np.ndarray, req: protocol.EmbeddingRequest, trace: Trace) -> bytes:
    data = [{"object": "embedding", "embedding": row, "index": i} for i, row in enumerate(vectors)]
    return orjson.dumps({"id": f"embed-{uuid.uuid4().hex}", "object": "embedding", "data": data, "model": req.model,
                         "created": float(int(time.time())), "usage": {"total_tokens": trace.tokens}},
                        option=orjson.OPT_SERIALIZE_NUMPY)


DIALECT = Dialect("nugen", parse, encode)
