"""`kind: openai`'s options for the APIs that share its format."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from router.config import parse
from tests.conftest import config_dict
from tests.fakes.api import Refused, vector_for
from tests.fakes.openai_upstream import FakeUpstream
from tests.providers.conftest import embed

MODEL = "voyage-3.5"


class FakeVoyage(FakeUpstream):
    """Voyage: `output_dimension` for dimensions, `input_type`, and `encoding_format` only base64 or absent."""

    dimensions_field = "output_dimension"

    def parse(self, request, payload):
        if payload.get("encoding_format") not in (None, "base64") or "dimensions" in payload:
            raise Refused(self.json({"detail": "unexpected field"}, 400))
        return super().parse(request, payload)


def test_voyage_style_options(serve, single):
    fake = FakeVoyage(models=(MODEL,))
    url = serve(fake)
    router = single({"kind": "openai", "base_url": f"{url}/v1", "encoding": "none",
                     "dimensions_field": "output_dimension", "extra_body": {"input_type": "document"},
                     "headers": {"x-team": "search"}}, MODEL)
    r = embed(router, input=["a", "b"], dimensions=8)
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(np.float32([d["embedding"] for d in r.json()["data"]]),
                               np.stack([vector_for(MODEL, x, 8) for x in "ab"]), atol=1e-6)
    sent = fake.requests[-1]
    assert sent["body"] == {"model": MODEL, "input": ["a", "b"], "input_type": "document", "output_dimension": 8}
    assert sent["headers"]["x-team"] == "search"


def test_voyage_detail_errors_pass_their_message(serve, single):
    fake = FakeVoyage(models=(MODEL,))
    router = single({"kind": "openai", "base_url": f"{serve(fake)}/v1"}, MODEL)  # sends encoding_format float
    r = embed(router, input="a")
    assert r.status_code == 400 and "unexpected field" in r.json()["error"]["message"]


@pytest.mark.parametrize(("base_url", "forwards"), [
    ("https://api.openai.com/v1", True),
    ("https://api.together.xyz/v1", False),
    ("http://vllm:8000/v1", False),
])
def test_token_ids_are_forwarded_by_default_only_to_openai(base_url, forwards):
    raw = config_dict("http://127.0.0.1:9", up={"kind": "openai", "base_url": base_url})
    assert parse(yaml.safe_dump(raw)).providers["up"].settings.accepts_tokens is forwards
    raw["providers"]["up"]["accepts_tokens"] = not forwards
    assert parse(yaml.safe_dump(raw)).providers["up"].settings.accepts_tokens is not forwards


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_voyage_style_output_dtype_from_an_api_that_quantises(serve, single, encoding):
    from tests.fakes.api import quantized

    fake = FakeUpstream()
    router = single({"kind": "openai", "base_url": f"{serve(fake)}/v1", "quantizes": ["int8", "uint8"],
                     "encoding": encoding}, "text-embedding-3-small")
    for dtype in ("int8", "uint8"):
        r = embed(router, input=["a", "b"], output_dtype=dtype)
        assert r.status_code == 200, r.text
        assert fake.requests[-1]["body"]["output_dtype"] == dtype
        assert [d["embedding"] for d in r.json()["data"]] == [
            quantized(vector_for("text-embedding-3-small", t), dtype) for t in ("a", "b")]
    assert embed(router, input="c").status_code == 200
    assert "output_dtype" not in fake.requests[-1]["body"]  # floats are asked for as before
