"""Ollama: `POST /api/embed` (`{"model", "embeddings", durations, "prompt_eval_count"}`) and the
older `POST /api/embeddings` (`prompt` -> `{"embedding"}`); `GET /api/tags` lists the key's models.

`truncate: false` (refuse over-long inputs) is a 400: the deployments cut them. `options` and
`keep_alive` tune an Ollama server's own model and are ignored.
"""

from __future__ import annotations

import time

import numpy as np
import orjson

from router import protocol
from router.dialects import Context, Dialect
from router.errors import InvalidRequest
from router.outcome import Trace


def parse(body: bytes, context: Context) -> protocol.EmbeddingRequest:
    payload = protocol.json_object(body)
    model = protocol.model_of(payload)
    inputs, tokens = protocol.inputs_of(payload.get("input"), context.max_inputs)
    return protocol.EmbeddingRequest(model, inputs, tokens, dimensions=protocol.dimensions_of(payload, "dimensions"),
                                     refuse_long=protocol.refuse_long(payload, "truncate"))


def encode(vectors: np.ndarray, req: protocol.EmbeddingRequest, trace: Trace) -> bytes:
    elapsed_ns = int((time.perf_counter() - trace.started) * 1e9)
    return orjson.dumps({"model": req.model, "embeddings": vectors, "total_duration": elapsed_ns,
                         "load_duration": 0, "prompt_eval_count": trace.tokens}, option=orjson.OPT_SERIALIZE_NUMPY)


def parse_legacy(body: bytes, context: Context) -> protocol.EmbeddingRequest:
    payload = protocol.json_object(body)
    model = protocol.model_of(payload)
    prompt = payload.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise InvalidRequest("'prompt' is required and must be a non-empty string", param="prompt")
    return protocol.EmbeddingRequest(model, [prompt], False)


def encode_legacy(vectors: np.ndarray, req: protocol.EmbeddingRequest, trace: Trace) -> bytes:
    return orjson.dumps({"embedding": vectors[0]}, option=orjson.OPT_SERIALIZE_NUMPY)


def tags(names: list[str]) -> bytes:
    """`GET /api/tags`: the models, in Ollama's list shape."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(0))
    return orjson.dumps({"models": [{"name": n, "model": n, "modified_at": stamp, "size": 0, "digest": "",
                                     "details": {"format": "", "family": "", "parameter_size": "",
                                                 "quantization_level": ""}} for n in names]})


DIALECT = Dialect("ollama", parse, encode)
LEGACY = Dialect("ollama-legacy", parse_legacy, encode_legacy)
