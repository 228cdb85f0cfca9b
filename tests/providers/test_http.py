"""The upstream error shapes every kind's messages are read from."""

from __future__ import annotations

import pytest

from router.providers.http import error_message


@pytest.mark.parametrize(("body", "said"), [
    (b'{"error": {"message": "bad input", "type": "invalid_request_error"}}', "bad input"),   # ErrorData
    (b'{"error": "model not found"}', "model not found"),                                    # seed 003, Ollama
    (b'"model not found"', "model not found"),                                               # a bare string
    (b'{"id": "x", "message": "invalid api token"}', "invalid api token"),                   # Cohere
    (b'{"detail": "unexpected field"}', "unexpected field"),                                 # Voyage, FastAPI
    (b'{"detail": [{"loc": ["body"], "msg": "field required"}]}', "field required"),         # FastAPI's 422
    (b'{"error": {"code": 400, "message": "Invalid value", "status": "INVALID_ARGUMENT"}}', "Invalid value"),
    (b"upstream connect error", "upstream connect error"),                                   # plain text
    (b"", "HTTP 502"),
])
def test_the_upstreams_own_words_from_every_shape(body, said):
    assert error_message(502, body) == said
