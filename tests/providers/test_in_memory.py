"""Adapters driven through an in-memory transport: the wire format's request, read and error
mapping, without sockets (the real-socket tests stay in the per-adapter modules)."""

from __future__ import annotations

import numpy as np
import pytest

from router.errors import ModelNotFound, RateLimited, UpstreamError
from router.providers.openai import OpenAIProvider, OpenAISettings
from tests.fakes.memory import MemoryTransport


def provider(handler) -> tuple[OpenAIProvider, MemoryTransport]:
    transport = MemoryTransport(handler)
    settings = OpenAISettings(base_url="https://api.example/v1", api_key="sk-in-memory-secret", max_batch=8)
    return OpenAIProvider("mem", settings, transport=transport), transport


async def test_request_and_answer_in_index_order():
    def answer(url, body):
        data = [{"index": i, "embedding": [float(i), 1.0]} for i in range(len(body["input"]))][::-1]
        return 200, {}, {"data": data, "usage": {"prompt_tokens": 7}}

    p, transport = provider(answer)
    result = await p.embed(["a", "b", "c"], model="m", dimensions=2)
    assert transport.calls == [("https://api.example/v1/embeddings",
                                {"model": "m", "input": ["a", "b", "c"], "encoding_format": "float", "dimensions": 2})]
    np.testing.assert_array_equal(result.vectors[:, 0], [0, 1, 2])
    assert result.tokens == 7


@pytest.mark.parametrize(("status", "body", "error", "code"), [
    (404, {"error": {"message": "no such model"}}, ModelNotFound, "model_not_found"),
    (429, {"error": {"message": "slow down"}}, RateLimited, "rate_limit_exceeded"),
    (500, "Bearer sk-in-memory-secret broke", UpstreamError, "upstream_error"),
    (200, {"data": [{"embedding": ["0.1"]}]}, UpstreamError, "upstream_error"),
])
async def test_errors_are_mapped_and_scrubbed(status, body, error, code):
    p, _ = provider(lambda url, b: (status, {"retry-after": "2"}, body if not isinstance(body, str) else body.encode()))
    with pytest.raises(error) as raised:
        await p.embed(["a"], model="m", dimensions=None)
    assert raised.value.code == code and "sk-in-memory-secret" not in raised.value.message
