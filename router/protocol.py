"""The OpenAI/Together embeddings wire format: request parsing, response encoding.

One JSON parse per body (orjson). Vectors arrive as one float32 array and
leave through orjson's NumPy serialiser or as base64 of little-endian
float32 (what the openai SDK decodes): no Python loop over floats.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from router import quantize
from router.errors import InvalidRequest

ENCODINGS = ("float", "base64")
MAX_DIMENSIONS = 65536   # beyond any model's width; a larger number would not even serialise upstream


@dataclass(frozen=True)
class EmbeddingRequest:
    model: str
    inputs: list          # list[str], or list[list[int]] when `tokens`
    tokens: bool          # the inputs are token-id arrays
    encoding_format: str = "float"
    dimensions: int | None = None
    user: str | None = None
    output_dtype: str = "float"   # Voyage's field: float, or binary/ubinary computed from the floats
    input_type: str | None = None  # what the texts are for (INPUT_TYPES), for upstreams that take it
    refuse_long: str | None = None  # the field that asked to refuse over-long inputs, not cut them
    options: Mapping[str, Any] = field(default_factory=dict)  # a dialect's own, for its encode (Cohere's types)


def parse(body: bytes, *, max_inputs: int = 2048) -> EmbeddingRequest:
    """Validate a request body; every refusal names the offending field."""
    payload = json_object(body)
    model = model_of(payload)
    inputs, tokens = inputs_of(payload.get("input", _MISSING), max_inputs)

    encoding = payload.get("encoding_format")
    if encoding is None:
        encoding = "float"
    elif encoding not in ENCODINGS:
        raise InvalidRequest(f"'encoding_format' must be 'float' or 'base64', got {_short(encoding)}",
                             param="encoding_format")
    dimensions = dimensions_of(payload, "dimensions")
    voyage = dimensions_of(payload, "output_dimension")  # what Voyage's SDK calls it
    if voyage is not None and dimensions not in (None, voyage):
        raise InvalidRequest(f"'dimensions' ({dimensions}) and 'output_dimension' ({voyage}) disagree",
                             param="output_dimension")
    user = payload.get("user")
    if user is not None and not isinstance(user, str):
        raise InvalidRequest("'user' must be a string", param="user")
    return EmbeddingRequest(model, inputs, tokens, encoding, dimensions if dimensions is not None else voyage,
                            user, _output_dtype(payload.get("output_dtype")),
                            input_type_of(payload.get("input_type"), VOYAGE_INPUT_TYPES),
                            refuse_long(payload, "truncation"))  # Voyage's: false refuses over-long inputs


# What the texts are for, in Cohere's words (the router's); Voyage's two map onto them.
INPUT_TYPES = ("search_document", "search_query", "classification", "clustering")
VOYAGE_INPUT_TYPES = {"document": "search_document", "query": "search_query"}


def input_type_of(value: object, accepted: Mapping[str, str]) -> str | None:
    """A dialect's `input_type` in the router's words; None when absent."""
    if value is None:
        return None
    if not isinstance(value, str) or value not in accepted:
        raise InvalidRequest(f"'input_type' must be one of {', '.join(accepted)}; got {_short(value)}",
                             param="input_type")
    return accepted[value]


def json_object(body: bytes) -> dict:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(payload, dict):
        raise InvalidRequest("the request body must be a JSON object", code="invalid_json")
    return payload


def model_of(payload: dict) -> str:
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a non-empty string", param="model")
    return check_name(model)


def dimensions_of(payload: dict, name: str) -> int | None:
    value = payload.get(name)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON's 256.0 is the integer 256 (as JSON Schema says)
    if value is not None and (not _is_int(value) or not 1 <= value <= MAX_DIMENSIONS):
        raise InvalidRequest(f"'{name}' must be an integer from 1 to {MAX_DIMENSIONS}, got {_short(value)}",
                             param=name)
    return value


def _output_dtype(value: object) -> str:
    if value is None:
        return "float"
    if value not in quantize.COMPUTED + quantize.UPSTREAM_ONLY:
        raise InvalidRequest(f"'output_dtype' must be one of {', '.join(quantize.COMPUTED + quantize.UPSTREAM_ONLY)},"
                             f" got {_short(value)}", param="output_dtype")
    return str(value)


_MISSING = object()


def inputs_of(value: object, max_inputs: int, name: str = "input") -> tuple[list, bool]:
    """Inputs as every dialect takes them: a string, strings, token ids, or arrays of token ids."""
    try:
        return _inputs(value, max_inputs)
    except InvalidRequest as exc:
        if name != "input":  # the dialect's own field name (TEI's `inputs`)
            exc.message, exc.param = exc.message.replace("'input'", f"'{name}'").replace("input[", f"{name}["), name
        raise


def refuse_long(payload: dict, name: str) -> str | None:
    """`name` if the dialect's boolean truncation field is false (refuse over-long inputs); None when
    it is absent or true (cut them)."""
    value = payload.get(name)
    if value is not None and not isinstance(value, bool):
        raise InvalidRequest(f"'{name}' must be true or false", param=name)
    return name if value is False else None


def refuse_off(payload: dict, name: str, why: str) -> None:
    """A field whose `false` would change the answer in a way no deployment can: a 400 naming it."""
    if payload.get(name) is False:
        raise InvalidRequest(f"'{name}': false is not supported: {why}", param=name, code=f"{name}_unsupported")


def _inputs(value: object, max_inputs: int) -> tuple[list, bool]:
    if value is _MISSING or value is None:
        raise InvalidRequest("'input' is required", param="input")
    if isinstance(value, str):
        if not value:
            raise InvalidRequest("'input' must not be an empty string", param="input")
        return [value], False
    if not isinstance(value, list) or not value:
        raise InvalidRequest("'input' must be a non-empty string, array of strings, array of token ids, "
                             "or array of token-id arrays", param="input")
    if len(value) > max_inputs:
        raise InvalidRequest(f"'input' has {len(value)} items; at most {max_inputs} are allowed", param="input")
    first = value[0]
    if isinstance(first, str):
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise InvalidRequest(f"input[{i}] must be a string like the other items", param="input")
            if not item:
                raise InvalidRequest(f"input[{i}] must not be an empty string", param="input")
        return value, False
    if _is_int(first) or isinstance(first, float):
        _check_tokens(value, "input")
        return [value], True
    if isinstance(first, list):
        for i, item in enumerate(value):
            if not isinstance(item, list) or not item:
                raise InvalidRequest(f"input[{i}] must be a non-empty array of token ids", param="input")
            _check_tokens(item, f"input[{i}]")
        return value, True
    raise InvalidRequest(f"input[0] has an unsupported type ({type(first).__name__})", param="input")


def _check_tokens(ids: list, where: str) -> None:
    for i, token in enumerate(ids):
        if isinstance(token, float) and token.is_integer():
            ids[i] = token = int(token)  # JSON's 42.0 is the integer 42 (as JSON Schema says)
        if not _is_int(token) or not 0 <= token < 2**31:
            raise InvalidRequest(f"{where}[{i}] must be a token id (an integer from 0 to 2^31-1)", param="input")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


MAX_NAME_CHARS = 256   # a model name is echoed in errors, headers and logs: never a client's megabytes


def check_name(model: str) -> str:
    """A model name short enough to echo; a longer one is a 400 quoting its start."""
    if len(model) > MAX_NAME_CHARS:
        raise InvalidRequest(f"'model' is {len(model)} characters; at most {MAX_NAME_CHARS} are allowed "
                             f"(it starts {model[:40]!r})", param="model", code="model_name_too_long")
    return model


def clip(text: str, limit: int = 200) -> str:
    """A client-supplied string cut to echo in a message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def encode(vectors: np.ndarray, *, model: str, tokens: int, encoding_format: str,
           output_dtype: str = "float") -> bytes:
    """The 200 body: data[i] answers input i. base64 holds the output type's bytes: little-endian
    float32, or one byte per eight dimensions for binary/ubinary (what Voyage's SDK decodes)."""
    vectors = quantize.as_output(vectors, output_dtype)
    if encoding_format == "base64":
        little = vectors.astype("<f4", copy=False) if output_dtype == "float" else vectors
        data = [{"object": "embedding", "index": i, "embedding": base64.b64encode(row.tobytes()).decode()}
                for i, row in enumerate(little)]
    else:
        data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(vectors)]
    return orjson.dumps(
        {"object": "list", "data": data, "model": model,
         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}},
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
