"""An upstream's answer is checked before it is served or cached: widths, counts, indexes,
numbers. A bad one is a 502 naming the provider, is never cached, and counts as that
deployment's failure, so a fallback deployment takes over."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.conftest import KEY, config_dict
from tests.fakes.openai_upstream import DIMS, vector_for

MODEL = "text-embedding-3-small"


def cut_width(width: int):
    def tamper(body: dict) -> dict:
        for item in body["data"]:
            item["embedding"] = item["embedding"][:width]
        return body
    return tamper


def alternate_widths(*widths: int):
    turns = itertools.cycle(widths)

    def tamper(body: dict) -> dict:
        return cut_width(next(turns))(body)
    return tamper


def full_width_whatever_asked(body: dict) -> dict:
    for i, item in enumerate(body["data"]):
        item["embedding"] = list(np.resize(np.asarray(item["embedding"]), DIMS))
        item["index"] = i
    return body


def one_index_missing(body: dict) -> dict:
    body["data"] = body["data"][::-1]
    del body["data"][0]["index"]
    return body


def numbers_as_strings(body: dict) -> dict:
    for item in body["data"]:
        item["embedding"] = [str(x) for x in item["embedding"]]
    return body


def post(router, inputs, **extra):
    with router.client(KEY) as c:
        return c.post("/v1/embeddings", json={"model": MODEL, "input": inputs, **extra})


def with_fallback(primary_url: str, fallback_url: str, matryoshka: bool = False) -> dict:
    config = config_dict(primary_url, backup={"kind": "openai", "base_url": f"{fallback_url}/v1",
                                              "api_key": "sk-upstream-secret-0123456789", "max_batch": 64,
                                              "accepts_tokens": True})
    config["models"][MODEL] = {"matryoshka": matryoshka, "deployments": [
        {"provider": "fake", "model": MODEL}, {"provider": "backup", "model": MODEL}]}
    return config


LIES = {
    "width changes after the first answer": (cut_width(8), {}),
    "dimensions ignored": (full_width_whatever_asked, {"dimensions": 8}),
    "one index missing, others reversed": (one_index_missing, {}),
    "numbers as strings": (numbers_as_strings, {}),
}


@pytest.mark.parametrize("lie", LIES)
def test_a_lying_upstream_is_a_502_and_never_cached(make_router, upstream, upstream_url, lie):
    router = make_router(config_dict(upstream_url))
    inputs = [f"text {i}" for i in range(16)]
    assert post(router, ["warm-up"]).status_code == 200  # the space's width is learnt from a good answer
    tamper, extra = LIES[lie]
    upstream.tamper = tamper
    response = post(router, inputs, **extra)
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["type"] == "upstream_error" and "'fake'" in error["message"]
    upstream.tamper = None
    again = post(router, inputs, **extra)
    assert again.status_code == 200 and again.headers["x-cache-hits"] == "0"  # nothing of the lie was kept
    want = [vector_for(MODEL, x, extra.get("dimensions")) for x in inputs]
    assert np.allclose([d["embedding"] for d in again.json()["data"]], want, atol=1e-6)


@pytest.mark.parametrize("lie", LIES)
def test_a_lying_upstream_falls_back(make_router, make_upstream, upstream, upstream_url, lie):
    _, backup_url = make_upstream()
    router = make_router(with_fallback(upstream_url, backup_url))
    assert post(router, ["warm-up"]).status_code == 200
    upstream.tamper, extra = LIES[lie]
    inputs = [f"other {i}" for i in range(5)]
    response = post(router, inputs, **extra)
    assert response.status_code == 200, response.text
    assert "backup/" in response.headers["x-router-deployment"]
    want = [vector_for(MODEL, x, extra.get("dimensions")) for x in inputs]
    assert np.allclose([d["embedding"] for d in response.json()["data"]], want, atol=1e-6)


@pytest.mark.parametrize("attempts", [1, 4])
def test_chunks_of_different_widths_are_a_502_not_a_500(make_router, upstream, upstream_url, attempts):
    config = config_dict(upstream_url)
    config["providers"]["fake"]["max_batch"] = 4
    config["routing"] = {"max_attempts": attempts}
    router = make_router(config)
    upstream.tamper = alternate_widths(8, 7)
    response = post(router, [f"chunked {i}" for i in range(8)])
    if attempts == 1:
        assert response.status_code == 502, response.text
        assert response.json()["error"]["code"] == "upstream_wrong_width"
    else:  # the odd chunk is retried until it answers in the request's width
        assert response.status_code == 200, response.text
        assert {len(d["embedding"]) for d in response.json()["data"]} == {8}


def test_a_matryoshka_model_cuts_a_full_width_answer(make_router, upstream, upstream_url):
    config = config_dict(upstream_url)
    config["models"][MODEL]["matryoshka"] = True
    router = make_router(config)
    upstream.tamper = full_width_whatever_asked
    response = post(router, ["a", "b"], dimensions=8)
    assert response.status_code == 200
    got = np.asarray([d["embedding"] for d in response.json()["data"]])
    assert got.shape == (2, 8) and np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    assert np.allclose(got, [vector_for(MODEL, x, 8) for x in "ab"], atol=1e-6)
