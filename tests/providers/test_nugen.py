"""`kind: nugen` (seed 004)."""

from __future__ import annotations

from tests.fakes.nugen_upstream import MATRYOSHKA, FakeNuGen
from tests.providers.conftest import embed
from tests.test_api import assert_error


def test_body_is_model_input_and_dimensions_only(serve, single):
    fake = FakeNuGen()
    router = single({"kind": "nugen", "base_url": serve(fake), "supports_dimensions": True}, MATRYOSHKA)
    r = embed(router, input="The quick brown fox", dimensions=8)
    assert r.status_code == 200, r.text
    assert fake.requests[-1]["body"] == {"model": MATRYOSHKA, "input": ["The quick brown fox"], "dimensions": 8}
    assert r.json()["usage"] == {"prompt_tokens": 5, "total_tokens": 5}


def test_dimensions_on_a_fixed_size_model_are_nugens_400(serve, single):
    router = single({"kind": "nugen", "base_url": serve(FakeNuGen()), "supports_dimensions": True},
                    "text-embedding-xyz")
    error = assert_error(embed(router, input="a", dimensions=8), 400, "invalid_request_error")
    assert "Matryoshka" in error["message"]
