"""Cohere: `POST /v2/embed` (ClientV2) and `POST /v1/embed` (Client).

`texts` (or v2 `inputs` with one text part each), `input_type` (sent to upstreams that take
it), `embedding_types` (float, binary, ubinary, base64 computed from the floats; int8 or uint8
alone from a model whose every deployment quantises, else a 400), `truncate` (END: cut; NONE:
refuse over-long texts, where every deployment can; START is a 400), `output_dimension`.
v2, and v1 with `embedding_types`, answer embeddings by type; v1 without them answers a bare
list (`embeddings_floats`).
"""

from __future__ import annotations

import base64
import uuid

import numpy as np
import orjson

from router import protocol, quantize
from router.dialects import Context, Dialect
from router.errors import InvalidRequest
from router.outcome import Trace

TYPES = ("float", "binary", "ubinary", "base64")


def _parse(body: bytes, context: Context, version: str) -> protocol.EmbeddingRequest:
    payload = protocol.json_object(body)
    model = protocol.model_of(payload)
    texts = payload.get("texts")
    if texts is None and version == "2" and payload.get("inputs") is not None:
        texts = _texts_of(payload["inputs"])
    inputs, _ = protocol.inputs_of(texts, context.max_inputs, "texts")
    if not all(isinstance(x, str) for x in inputs):
        raise InvalidRequest("'texts' must be strings", param="texts")
    input_type = protocol.input_type_of(payload.get("input_type"), {t: t for t in protocol.INPUT_TYPES})
    truncate = str(payload.get("truncate") or "END").upper()
    if truncate not in ("END", "NONE"):
        raise InvalidRequest(f"'truncate' {protocol.clip(truncate, 20)} is not supported: the deployments cut "
                             "the end of long inputs (END), or refuse them (NONE)", param="truncate",
                             code="truncate_unsupported")
    types = payload.get("embedding_types")
    if types is not None:
        if not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types):
            raise InvalidRequest("'embedding_types' must be a non-empty list of strings", param="embedding_types")
        for kind in types:
            if kind not in TYPES + quantize.UPSTREAM_ONLY:
                raise InvalidRequest(f"'embedding_types' may hold {', '.join(TYPES + quantize.UPSTREAM_ONLY)}; "
                                     f"got {protocol.clip(kind, 40)!r}", param="embedding_types")
        if any(kind in quantize.UPSTREAM_ONLY for kind in types) and len(set(types)) > 1:
            raise InvalidRequest("'embedding_types': ask for int8 or uint8 alone (they come from the upstream's own "
                                 "quantisation; the others are computed from floats)", param="embedding_types")
    dimensions = protocol.dimensions_of(payload, "output_dimension")
    return protocol.EmbeddingRequest(model, inputs, False, dimensions=dimensions, input_type=input_type,
                                     refuse_long="truncate" if truncate == "NONE" else None,
                                     output_dtype=types[0] if types and types[0] in quantize.UPSTREAM_ONLY else "float",
                                     options={"version": version, "types": types, "texts": inputs,
                                              "dtype_param": "embedding_types"})


def _texts_of(items: object) -> list:
    """v2 `inputs`: each `{"content": [{"type": "text", "text": ...}]}`, one text part (no images)."""
    if not isinstance(items, list):
        raise InvalidRequest("'inputs' must be a list", param="inputs")
    texts = []
    for i, item in enumerate(items):
        content = item.get("content") if isinstance(item, dict) else None
        parts = [p for p in content if isinstance(p, dict)] if isinstance(content, list) else []
        if len(parts) != 1 or parts[0].get("type") != "text" or not isinstance(parts[0].get("text"), str):
            raise InvalidRequest(f"inputs[{i}] must hold one text part (images are not served here)",
                                 param="inputs")
        texts.append(parts[0]["text"])
    return texts


def encode(vectors: np.ndarray, req: protocol.EmbeddingRequest, trace: Trace) -> bytes:
    types = req.options["types"]
    meta = {"api_version": {"version": req.options["version"]}, "billed_units": {"input_tokens": trace.tokens}}
    answer: dict = {"id": str(uuid.uuid4()), "texts": req.options["texts"], "meta": meta}
    if types is None and req.options["version"] == "1":
        answer.update(embeddings=vectors, response_type="embeddings_floats")
    else:
        answer.update(embeddings={kind: _as(vectors, kind) for kind in (types or ["float"])},
                      response_type="embeddings_by_type")
    return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)


def _as(vectors: np.ndarray, kind: str) -> object:
    if kind == "base64":
        return [base64.b64encode(row.astype("<f4").tobytes()).decode() for row in vectors]
    return quantize.as_output(vectors, kind)


V2 = Dialect("cohere-v2", lambda body, context: _parse(body, context, "2"), encode)
V1 = Dialect("cohere-v1", lambda body, context: _parse(body, context, "1"), encode)
