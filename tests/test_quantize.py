"""binary / ubinary computed from floats, as sentence-transformers' quantize_embeddings,
Cohere and Voyage define them; Voyage's fields on /v1/embeddings, through its own SDK."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import voyageai
import voyageai.error

from router import quantize
from tests.conftest import KEY
from tests.fakes.openai_upstream import vector_for

MODEL = "text-embedding-3-small"
# Fixed vectors and the bytes quantize_embeddings(..., precision="ubinary") gives for them:
# np.packbits(v > 0) with the most significant bit first; 0 is not > 0.
FIXED = np.array([[0.5, -1, 0, 2, 3, -0.1, 0.2, 1,   -1, -1, -1, -1, -1, -1, -1, 0.1],
                  [-0.5, 1, 1, -2, -3, 0.1, -0.2, -1,  1, 1, 1, 1, 1, 1, 1, -0.1]], dtype=np.float32)
UBINARY = [[0b10011011, 0b00000001], [0b01100100, 0b11111110]]          # [[155, 1], [100, 254]]
BINARY = [[155 - 128, 1 - 128], [100 - 128, 254 - 128]]


def test_ubinary_and_binary_bytes():
    assert quantize.ubinary(FIXED).tolist() == UBINARY
    assert quantize.binary(FIXED).tolist() == BINARY
    assert quantize.binary(FIXED).dtype == np.int8 and quantize.ubinary(FIXED).dtype == np.uint8


def post(router, **body):
    with router.client(KEY) as c:
        return c.post("/v1/embeddings", json={"model": MODEL, **body})


@pytest.mark.parametrize("dtype", ["binary", "ubinary"])
@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_binary_outputs_over_http_come_from_the_cached_floats(router, upstream, dtype, encoding):
    texts = ["alpha", "beta", "gamma"]
    floats = np.stack([vector_for(MODEL, t) for t in texts])
    want = quantize.as_output(floats, dtype)
    assert post(router, input=texts).status_code == 200  # floats cached
    r = post(router, input=texts, output_dtype=dtype, encoding_format=encoding)
    assert r.status_code == 200 and r.headers["x-cache-hits"] == "3"
    rows = [d["embedding"] for d in r.json()["data"]]
    if encoding == "base64":
        rows = [np.frombuffer(base64.b64decode(row), dtype=want.dtype).tolist() for row in rows]
    assert rows == want.tolist()


def test_voyage_fields_are_honoured_or_refused(router, upstream):
    r = post(router, input=["a"], output_dimension=8)
    assert r.status_code == 200 and len(r.json()["data"][0]["embedding"]) == 8
    assert upstream.requests[-1]["body"]["dimensions"] == 8
    for body, param in [({"output_dtype": "int8"}, "output_dtype"), ({"output_dtype": "fp16"}, "output_dtype"),
                        ({"dimensions": 4, "output_dimension": 8}, "output_dimension"),
                        ({"truncation": False}, "truncation")]:
        refused = post(router, input=["a"], **body)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == param, refused.text
    assert MODEL in post(router, input=["a"], output_dtype="uint8").json()["error"]["message"]


def test_the_voyageai_sdk_drops_in(router, upstream):
    client = voyageai.Client(api_key=KEY, base_url=f"{router.url}/v1", max_retries=0)
    texts = ["first text", "second text"]
    floats = client.embed(texts, model=MODEL, input_type="document", output_dimension=8)
    want = np.stack([vector_for(MODEL, t, 8) for t in texts])
    np.testing.assert_allclose(floats.embeddings, want, atol=1e-6)
    assert floats.total_tokens > 0
    packed = client.embed(texts, model=MODEL, output_dtype="ubinary")
    assert packed.embeddings == quantize.ubinary(np.stack([vector_for(MODEL, t) for t in texts])).tolist()
    with pytest.raises(voyageai.error.InvalidRequestError, match="cannot return 'output_dtype' int8"):
        client.embed(texts, model=MODEL, output_dtype="int8")
    with pytest.raises(voyageai.error.AuthenticationError):
        voyageai.Client(api_key="sk-wrong-key-for-the-fake", base_url=f"{router.url}/v1", max_retries=0).embed(
            texts, model=MODEL)
