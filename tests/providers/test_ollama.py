"""`kind: ollama`: truncate and keep_alive, and a model that is not pulled."""

from __future__ import annotations

from tests.fakes.ollama_upstream import FakeOllama
from tests.providers.conftest import embed
from tests.test_api import assert_error


def test_truncate_and_keep_alive_are_sent(serve, single):
    fake = FakeOllama()
    router = single({"kind": "ollama", "base_url": serve(fake), "truncate": False, "keep_alive": "30m"},
                    "nomic-embed-text")
    assert embed(router, input=["a"]).status_code == 200
    assert fake.requests[-1]["body"] == {"model": "nomic-embed-text", "input": ["a"], "truncate": False,
                                         "keep_alive": "30m"}


def test_a_model_not_pulled_is_a_404_saying_so(serve, single):
    router = single({"kind": "ollama", "base_url": serve(FakeOllama())}, "llama-embed")
    error = assert_error(embed(router, input="a"), 404, param="model", code="model_not_found")
    assert "try pulling it first" in error["message"]
