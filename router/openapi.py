"""The router's OpenAPI 3.1 document, served at GET /openapi.json.

Written out rather than generated: it is the contract clients and the fuzz
suite hold the router to (`tests/test_openapi.py` checks that every route
the app serves is here, with its methods, and that every answer matches).
"""

from __future__ import annotations

from typing import Any

from router import protocol, quantize

_ERROR = {"$ref": "#/components/schemas/ErrorData"}
_ERROR_STATUSES = {
    "400": "invalid request (`param` names the field)", "401": "missing or unknown key",
    "403": "the key may not use this model, or is not an admin key", "404": "unknown model or route",
    "405": "method not allowed", "413": "body over `server.max_body_bytes`",
    "415": "body is not JSON", "429": "a key's limit, or the upstream's (Retry-After)",
    "500": "a bug (still ErrorData)", "502": "an upstream failed or answered wrongly",
    "503": "overloaded: queue full, deployments busy or cooling down, limiter unavailable, "
           "too many connections (Retry-After)",
    "504": "no answer within `server.request_timeout_s`",
}


def _errors(*statuses: str) -> dict[str, Any]:
    return {s: {"description": _ERROR_STATUSES[s], "content": {"application/json": {"schema": _ERROR}}}
            for s in statuses}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ALL_API = ("400", "401", "403", "404", "413", "415", "429", "500", "502", "503", "504")
_MODEL = {"type": "object", "required": ["id", "object", "created", "owned_by"],
          "properties": {"id": {"type": "string"}, "object": {"const": "model"}, "created": {"type": "integer"},
                         "owned_by": {"type": "string"}}}
_DIMENSIONS = {"type": "integer", "minimum": 1, "maximum": protocol.MAX_DIMENSIONS}
_ROWS = {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}
_TOKEN_IDS = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}}

SCHEMAS: dict[str, Any] = {
    "ErrorData": {
        "type": "object", "required": ["error"], "additionalProperties": False,
        "properties": {"detail": {"type": "string", "description": "the message again (embeddings routes), "
                                                                    "for Voyage's SDK"},
                       "error": {
            "type": "object", "required": ["message", "type", "param", "code"],
            "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                           "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}}},
    "EmbeddingsRequest": {
        "type": "object", "required": ["model", "input"],
        "not": {"required": ["dimensions", "output_dimension"]},  # one name for it (a 400 when they differ)
        "properties": {
            "model": {"type": "string", "minLength": 1, "maxLength": protocol.MAX_NAME_CHARS},
            "input": {"oneOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
                _TOKEN_IDS,
                {"type": "array", "minItems": 1, "items": _TOKEN_IDS}]},
            "encoding_format": {"enum": list(protocol.ENCODINGS)},
            "dimensions": _DIMENSIONS,
            "user": {"type": "string"},
            # Voyage's fields (its SDK posts here): `output_dimension` is `dimensions`; binary and ubinary
            # are computed from the floats (int8/uint8 come from upstreams that quantise: model-dependent).
            "output_dimension": _DIMENSIONS,
            "output_dtype": {"enum": list(quantize.COMPUTED)},
            "input_type": {"enum": ["document", "query", None]},
            "truncation": {"const": True}}},
    "EmbeddingsResponse": {
        "type": "object", "required": ["object", "data", "model", "usage"],
        "properties": {
            "object": {"const": "list"}, "model": {"type": "string"},
            "data": {"type": "array", "items": {
                "type": "object", "required": ["object", "index", "embedding"],
                "properties": {"object": {"const": "embedding"}, "index": {"type": "integer"},
                               "embedding": {"oneOf": [{"type": "array", "items": {"type": "number"}},
                                                       {"type": "string"}]}}}},  # numbers: floats or bytes
            "usage": {"type": "object", "required": ["prompt_tokens", "total_tokens"],
                      "properties": {"prompt_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"}}}}},
    "TEIRequest": {
        "type": "object", "required": ["inputs"],
        "properties": {"inputs": {"oneOf": [{"type": "string", "minLength": 1},
                                            {"type": "array", "minItems": 1,
                                             "items": {"type": "string", "minLength": 1}}]},
                       "normalize": {"const": True}, "truncate": {"const": True},
                       "truncation_direction": {"enum": ["right", "Right"]},
                       "dimensions": _DIMENSIONS}},
    "OllamaEmbedRequest": {
        "type": "object", "required": ["model", "input"],
        "properties": {"model": {"type": "string", "minLength": 1, "maxLength": protocol.MAX_NAME_CHARS},
                       "input": {"oneOf": [{"type": "string", "minLength": 1},
                                           {"type": "array", "minItems": 1,
                                            "items": {"type": "string", "minLength": 1}}]},
                       "truncate": {"const": True}, "dimensions": _DIMENSIONS,
                       "keep_alive": {}, "options": {"type": "object"}}},
    "OllamaEmbedResponse": {
        "type": "object", "required": ["model", "embeddings", "prompt_eval_count"],
        "properties": {"model": {"type": "string"},
                       "embeddings": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
                       "total_duration": {"type": "integer"}, "load_duration": {"type": "integer"},
                       "prompt_eval_count": {"type": "integer"}}},
    "OllamaLegacyRequest": {
        "type": "object", "required": ["model", "prompt"],
        "properties": {"model": {"type": "string", "minLength": 1, "maxLength": protocol.MAX_NAME_CHARS},
                       "prompt": {"type": "string", "minLength": 1}}},
    "CohereEmbedRequest": {
        "type": "object", "required": ["model", "texts"],
        "properties": {"model": {"type": "string", "minLength": 1, "maxLength": protocol.MAX_NAME_CHARS},
                       "texts": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
                       "input_type": {"enum": ["search_document", "search_query", "classification", "clustering"]},
                       "embedding_types": {"type": "array", "minItems": 1,
                                           "items": {"enum": ["float", "binary", "ubinary", "base64"]}},
                       "truncate": {"enum": ["END"]}, "output_dimension": _DIMENSIONS}},
    "CohereEmbedResponse": {
        "type": "object", "required": ["id", "embeddings", "response_type"],
        "properties": {"id": {"type": "string"}, "texts": {"type": "array", "items": {"type": "string"}},
                       "embeddings": {"type": ["object", "array"]},
                       "response_type": {"enum": ["embeddings_by_type", "embeddings_floats"]},
                       "meta": {"type": "object"}}},
    "Model": _MODEL,
    "ModelList": {"type": "object", "required": ["object", "data"],
                  "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": _MODEL}}},
}


def _embeddings() -> dict:
    return {"post": {
        "summary": "Create embeddings (OpenAI / Together shape)", "operationId": "createEmbeddings",
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/EmbeddingsRequest"}}}},
        "responses": {"200": _json({"$ref": "#/components/schemas/EmbeddingsResponse"}), **_errors(*_ALL_API)}}}


def _dialect(summary: str, op: str, request: str, answer: dict) -> dict:
    return {"post": {
        "summary": summary, "operationId": op,
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{request}"}}}},
        "responses": {"200": _json(answer), **_errors(*_ALL_API)}}}


def _models() -> dict:
    return {"get": {"summary": "The models this key may use", "operationId": "listModels",
                    "responses": {"200": _json({"$ref": "#/components/schemas/ModelList"}),
                                  **_errors("401", "500")}}}


def _plain(summary: str, op: str, body: dict, *statuses: str, method: str = "get", secured: bool = False) -> dict:
    operation: dict[str, Any] = {"summary": summary, "operationId": op,
                                 "responses": {"200": _json(body), **_errors(*statuses)}}
    if not secured:
        operation["security"] = []
    return {method: operation}


def _with_query(path: dict, params: dict[str, dict]) -> dict:
    for operation in path.values():
        operation["parameters"] = [{"name": name, "in": "query", "required": False, "schema": schema}
                                   for name, schema in params.items()]
    return path


def _usage() -> dict:
    path = _with_query(_plain("Usage rows by hour (admin key)", "adminUsage", {
        "type": "object", "required": ["data"], "properties": {"data": {"type": "array", "items": {
            "type": "object", "required": ["hour", "requests", "inputs", "tokens", "cache_hits",
                                           "cache_saved_tokens", "errors_4xx", "errors_5xx", "cost_usd"]}}}},
        "400", "401", "403", "500", "503", secured=True),
        {"from": {"type": "string"}, "to": {"type": "string"}, "group_by": {"type": "string"},
         "format": {"type": "string", "enum": ["json", "csv"]}})
    path["get"]["responses"]["200"]["content"]["text/csv"] = {"schema": {"type": "string"}}
    return path


def document() -> dict:
    """The OpenAPI document of every public route."""
    status = {"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"]}
    anything = {"type": "object"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "embeddings-router", "version": "1",
                 "description": "A drop-in OpenAI/Together embeddings endpoint. Every non-2xx answer is ErrorData."},
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": {
            "/v1/embeddings": _embeddings(),
            "/embeddings": _embeddings(),
            "/embed": _dialect("TEI: embed with `server.default_model`", "teiEmbed", "TEIRequest", _ROWS),
            "/": _dialect("TEI's root route (huggingface_hub posts here)", "teiRoot", "TEIRequest", _ROWS),
            "/info": _plain("TEI: the default model and batch limit", "teiInfo", {"type": "object"}, "401", "500",
                            secured=True),
            "/api/embed": _dialect("Ollama: embed", "ollamaEmbed", "OllamaEmbedRequest",
                                   {"$ref": "#/components/schemas/OllamaEmbedResponse"}),
            "/api/embeddings": _dialect("Ollama's older single-prompt route", "ollamaEmbeddings", "OllamaLegacyRequest",
                                        {"type": "object", "required": ["embedding"],
                                         "properties": {"embedding": {"type": "array", "items": {"type": "number"}}}}),
            "/api/tags": _plain("Ollama: the models this key may use", "ollamaTags", {"type": "object"}, "401",
                                "500", secured=True),
            "/v2/embed": _dialect("Cohere v2 (ClientV2)", "cohereEmbedV2", "CohereEmbedRequest",
                                  {"$ref": "#/components/schemas/CohereEmbedResponse"}),
            "/v1/embed": _dialect("Cohere v1 (Client)", "cohereEmbedV1", "CohereEmbedRequest",
                                  {"$ref": "#/components/schemas/CohereEmbedResponse"}),
            "/api/v3/inference/embeddings": _dialect(
                "NuGen", "nugenEmbed", "OllamaEmbedRequest",  # the same body: model, input, dimensions
                {"type": "object", "required": ["id", "object", "data", "model", "created", "usage"],
                 "properties": {"object": {"const": "embedding"}, "created": {"type": "number"},
                                "data": {"type": "array"}, "usage": {"type": "object",
                                                                     "required": ["total_tokens"]}}}),
            "/v1/models": _models(),
            "/models": _models(),
            "/v1/models/{model}": {"get": {
                "summary": "One model, if this key may use it", "operationId": "retrieveModel",
                "parameters": [{"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _json({"$ref": "#/components/schemas/Model"}),
                              **_errors("400", "401", "403", "404", "500")}}},
            "/health": _plain("Alive", "health", status, "500"),
            "/ready": _plain("Ready for traffic (Redis reachable)", "ready", status, "500", "503"),
            "/metrics": {"get": {"summary": "Prometheus metrics", "operationId": "metrics", "security": [],
                                 "responses": {"200": {"description": "the exposition format",
                                                       "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/openapi.json": _plain("This document", "openapi", anything, "500"),
            "/admin/status": _plain("The router's state (admin key)", "adminStatus", anything,
                                    "401", "403", "500", secured=True),
            "/admin/reload": _plain("Reload the config file (admin key)", "adminReload", anything,
                                    "400", "401", "403", "500", method="post", secured=True),
            "/admin/usage": _usage(),
            "/admin/traffic": _with_query(_plain("Per-second traffic of the last hour (admin key)", "adminTraffic",
                                                 anything, "400", "401", "403", "500", secured=True),
                                          {"after": {"type": "string", "pattern": "^[0-9]*$"}}),
            "/console": {"get": {"summary": "The ops console (an HTML page; it asks for an admin key)",
                                 "operationId": "console", "security": [],
                                 "responses": {"200": {"description": "the page",
                                                       "content": {"text/html": {"schema": {"type": "string"}}}}}}},
        },
    }
