"""OpenAI / Together (and Voyage's fields): `POST /v1/embeddings`, `POST /embeddings`."""

from __future__ import annotations

import numpy as np

from router import protocol
from router.dialects import Context, Dialect
from router.outcome import Trace


def parse(body: bytes, context: Context) -> protocol.EmbeddingRequest:
    return protocol.parse(body, max_inputs=context.max_inputs)


def encode(vectors: np.ndarray, req: protocol.EmbeddingRequest, trace: Trace) -> bytes:
    return protocol.encode(vectors, model=req.model, tokens=trace.tokens, encoding_format=req.encoding_format,
                           output_dtype=req.output_dtype)


DIALECT = Dialect("openai", parse, encode, error_detail=True)
