"""Hugging Face text-embeddings-inference: `POST /embed` and `POST /` (what huggingface_hub's
`InferenceClient(base_url=ROUTER).feature_extraction(...)` posts to), answering a bare `[[...]]`.

TEI requests name no model: they use `server.default_model`. `normalize`, `truncate` and
`truncation_direction` are honoured where the answer would be the same, and refused with a
400 naming them where it would not (`normalize: false`, `truncate: false`, `left`).
"""

from __future__ import annotations

import numpy as np
import orjson

from router import protocol
from router.dialects import Context, Dialect
from router.errors import InvalidRequest
from router.outcome import Trace


def parse(body: bytes, context: Context) -> protocol.EmbeddingRequest:
    payload = protocol.json_object(body)
    if context.default_model is None:
        raise InvalidRequest("TEI requests name no model, and this router has no `server.default_model` to "
                             "serve them with", param="model", code="default_model_unset")
    inputs, tokens = protocol.inputs_of(payload.get("inputs"), context.max_inputs, "inputs")
    protocol.refuse_off(payload, "normalize", "the deployments answer unit-length vectors")
    if str(payload.get("truncation_direction") or "right").lower() != "right":
        raise InvalidRequest("'truncation_direction' must be 'right': the deployments cut the end of long inputs",
                             param="truncation_direction")
    return protocol.EmbeddingRequest(context.default_model, inputs, tokens,
                                     dimensions=protocol.dimensions_of(payload, "dimensions"),
                                     refuse_long=protocol.refuse_long(payload, "truncate"))


def encode(vectors: np.ndarray, req: protocol.EmbeddingRequest, trace: Trace) -> bytes:
    return orjson.dumps(vectors, option=orjson.OPT_SERIALIZE_NUMPY)


DIALECT = Dialect("tei", parse, encode)
