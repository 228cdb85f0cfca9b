"""Adapters driven through an in-memory transport: the wire format's request, read and error
mapping, without sockets (the real-socket tests stay in the per-adapter modules)."""

from __future__ import annotations

import base64

import numpy as np
import orjson
import pytest

from router.errors import ModelNotFound, RateLimited, UpstreamError
from router.providers.openai import OpenAIProvider, OpenAISettings, read_data, read_floats
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


FLOATS = np.random.default_rng(3).standard_normal((4, 6)).astype(np.float32)


def openai_answer(data: list, usage: object = None) -> bytes:
    return orjson.dumps({"object": "list", "data": data, "model": "m", "usage": usage or {"prompt_tokens": 9}},
                        option=orjson.OPT_SERIALIZE_NUMPY)


@pytest.mark.parametrize("indexed", [True, False])
def test_the_usual_answer_is_read_without_python_floats_and_as_read_data_reads_it(indexed):
    items = [{"object": "embedding", **({"index": i} if indexed else {}), "embedding": row}
             for i, row in enumerate(FLOATS)]
    content = openai_answer(items)
    fast, slow = read_floats(content, 4), read_data(orjson.loads(content), 4, "mem")
    assert fast is not None and fast.tokens == slow.tokens == 9
    np.testing.assert_array_equal(fast.vectors, np.asarray(slow.vectors))


@pytest.mark.parametrize(("why", "data"), [
    ("a nested array, which simdjson would flatten", [[0.5, [0.25], 1.0]] + [[0.5, 0.25, 1.0]] * 3),
    ("a string for a number", [[0.5, "0.25", 1.0]] * 4),
    ("null for a number", [[0.5, None, 1.0]] * 4),
    ("rows of different widths", [[0.5, 1.0]] + [[0.5, 0.25, 1.0]] * 3),
    ("a number too large for a double", [[1e400, 0.0]] * 4),
    ("too few rows", [[0.5, 1.0]] * 3),
])
async def test_an_odd_answer_is_left_to_the_strict_reader_which_refuses_it(why, data):
    raw = openai_answer([{"index": i, "embedding": "@"} for i in range(len(data))])
    for row in data:  # written by hand: orjson would not write 1e400
        raw = raw.replace(b'"@"', b"[" + b",".join(orjson_value(x) for x in row) + b"]", 1)
    assert read_floats(raw, 4) is None, why
    p, _ = provider(lambda url, body: (200, {}, raw))
    with pytest.raises(UpstreamError):
        await p.embed(["a", "b", "c", "d"], model="m", dimensions=None)


def orjson_value(x: object) -> bytes:
    return b"1e400" if x == 1e400 else orjson.dumps(x)


async def test_shuffled_or_base64_answers_take_the_strict_reader_and_still_come_in_order():
    shuffled = openai_answer([{"index": i, "embedding": FLOATS[i]} for i in (2, 0, 3, 1)])
    packed = openai_answer([{"index": i, "embedding": base64.b64encode(FLOATS[i].tobytes()).decode()}
                            for i in range(4)])
    for raw in (shuffled, packed):
        assert read_floats(raw, 4) is None
        p, _ = provider(lambda url, body, raw=raw: (200, {}, raw))
        np.testing.assert_array_equal((await p.embed(["a", "b", "c", "d"], model="m", dimensions=None)).vectors,
                                      FLOATS)
