"""The HTTP API end to end: the router on a real socket, a fake upstream behind it."""

from __future__ import annotations

import base64
import gc

import httpx
import numpy as np
import orjson
import pytest

from tests.conftest import KEY, LIMITED_KEY, config_dict
from tests.fakes.openai_upstream import vector_for


@pytest.fixture
def router(make_router, upstream, upstream_url):
    """One call per chunk: these tests pin how a single upstream answer is translated
    (retries and fallbacks are tests/test_routing.py's)."""
    config = config_dict(upstream_url)
    config["routing"] = {"max_attempts": 1}
    return make_router(config)


def assert_error(response, status: int, type_: str | None = None, param: str | None = None,
                 code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) <= {"error", "detail"}  # detail: the message again, on /v1/embeddings (Voyage's SDK)
    error = body["error"]
    assert body.get("detail", error["message"]) == error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    if type_ is not None:
        assert error["type"] == type_
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    return error


def test_embeddings_every_input_form(router, upstream):
    with router.client() as c:
        for value, expected in [
            ("hello", ["hello"]),
            (["a", "b", "c"], ["a", "b", "c"]),
            ([1, 2, 3], [[1, 2, 3]]),
            ([[1, 2], [3, 4, 5]], [[1, 2], [3, 4, 5]]),
        ]:
            r = c.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": value})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["object"] == "list" and body["model"] == "text-embedding-3-small"
            assert [d["index"] for d in body["data"]] == list(range(len(expected)))
            for d, item in zip(body["data"], expected):
                assert d["object"] == "embedding"
                np.testing.assert_array_equal(np.float32(d["embedding"]), vector_for("text-embedding-3-small", item))
            assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
    # token arrays were forwarded as token arrays, not decoded
    assert upstream.requests[2]["body"]["input"] == [[1, 2, 3]]


def test_base64_is_little_endian_float32(router):
    with router.client() as c:
        r = c.post("/embeddings", json={"model": "bge-base-en-v1.5", "input": ["x", "y"], "encoding_format": "base64"})
    assert r.status_code == 200
    for d, text in zip(r.json()["data"], ["x", "y"]):
        got = np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4")
        np.testing.assert_array_equal(got, vector_for("BAAI/bge-base-en-v1.5", text))


def test_alias_resolves_and_response_names_requested_model(router, upstream):
    with router.client() as c:
        r = c.post("/v1/embeddings", json={"model": "BAAI/bge-base-en-v1.5", "input": "q"})
    assert r.status_code == 200 and r.json()["model"] == "BAAI/bge-base-en-v1.5"
    assert upstream.requests[-1]["body"]["model"] == "BAAI/bge-base-en-v1.5"


def test_unknown_fields_are_ignored_and_dimensions_and_user_pass(router, upstream):
    with router.client() as c:
        r = c.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "q", "dimensions": 8,
                                           "user": "u1", "something_new": {"x": 1}})
    assert r.status_code == 200, r.text
    assert len(r.json()["data"][0]["embedding"]) == 8
    assert upstream.requests[-1]["body"]["dimensions"] == 8


@pytest.mark.parametrize(("body", "param"), [
    ({"input": "x"}, "model"),
    ({"model": "", "input": "x"}, "model"),
    ({"model": 3, "input": "x"}, "model"),
    ({"model": "text-embedding-3-small"}, "input"),
    ({"model": "text-embedding-3-small", "input": ""}, "input"),
    ({"model": "text-embedding-3-small", "input": []}, "input"),
    ({"model": "text-embedding-3-small", "input": ["a", ""]}, "input"),
    ({"model": "text-embedding-3-small", "input": ["a", 1]}, "input"),
    ({"model": "text-embedding-3-small", "input": [[1], []]}, "input"),
    ({"model": "text-embedding-3-small", "input": [1, -2]}, "input"),
    ({"model": "text-embedding-3-small", "input": [True]}, "input"),
    ({"model": "text-embedding-3-small", "input": [{"a": 1}]}, "input"),
    ({"model": "text-embedding-3-small", "input": ["a"] * 2049}, "input"),
    ({"model": "text-embedding-3-small", "input": 5.5}, "input"),
    ({"model": "text-embedding-3-small", "input": "a", "encoding_format": "int8"}, "encoding_format"),
    ({"model": "text-embedding-3-small", "input": "a", "dimensions": 0}, "dimensions"),
    ({"model": "text-embedding-3-small", "input": "a", "dimensions": "8"}, "dimensions"),
    ({"model": "text-embedding-3-small", "input": "a", "dimensions": True}, "dimensions"),
    ({"model": "text-embedding-3-small", "input": "a", "user": 7}, "user"),
])
def test_invalid_requests_name_the_field(router, body, param):
    with router.client() as c:
        assert_error(c.post("/v1/embeddings", json=body), 400, "invalid_request_error", param)


@pytest.mark.parametrize("raw", [b"", b"{", b"[1,2]", b"null", b"\xff\xfe", b'"just a string"'])
def test_malformed_bodies_are_400(router, raw):
    with router.client() as c:
        r = c.post("/v1/embeddings", content=raw, headers={"content-type": "application/json"})
    assert_error(r, 400, "invalid_request_error")


def test_not_json_media_type_is_415(router):
    with router.client() as c:
        r = c.post("/v1/embeddings", content=b"<x/>", headers={"content-type": "application/xml"})
    assert_error(r, 415, code="unsupported_media_type")


def test_body_over_limit_is_413(router):
    with router.client() as c:
        r = c.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "x" * 1_100_000})
        assert_error(r, 413, code="request_too_large")

        def chunked():  # no content-length: the streamed size is checked too
            yield b'{"model": "text-embedding-3-small", "input": "'
            for _ in range(200):
                yield b"y" * 10_000
            yield b'"}'
        r = c.post("/v1/embeddings", content=chunked(), headers={"content-type": "application/json"})
        assert_error(r, 413, code="request_too_large")


def test_auth_errors_are_401(router):
    body = {"model": "text-embedding-3-small", "input": "x"}
    for key in (None, "wrong-key"):
        with router.client(key) as c:
            error = assert_error(c.post("/v1/embeddings", json=body), 401, "authentication_error",
                                 code="invalid_api_key")
            assert "wrong-key" not in error["message"]
    with router.client(None) as c:
        r = c.post("/v1/embeddings", json=body, headers={"authorization": f"Basic {KEY}"})
        assert_error(r, 401, code="invalid_api_key")
        assert_error(c.get("/v1/models"), 401, code="invalid_api_key")


def test_model_permissions_and_listing(router):
    with router.client(LIMITED_KEY) as c:
        assert_error(c.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "x"}),
                     403, "permission_error", "model")
        assert c.post("/v1/embeddings", json={"model": "bge-base-en-v1.5", "input": "x"}).status_code == 200
        ids = [m["id"] for m in c.get("/v1/models").json()["data"]]
        assert ids == ["bge-base-en-v1.5", "BAAI/bge-base-en-v1.5"]
        assert_error(c.get("/v1/models/text-embedding-3-small"), 403, param="model")
    with router.client() as c:
        listing = c.get("/v1/models").json()
        assert listing["object"] == "list"
        assert {m["id"] for m in listing["data"]} == {"text-embedding-3-small", "bge-base-en-v1.5",
                                                      "BAAI/bge-base-en-v1.5"}
        assert c.get("/v1/models/BAAI/bge-base-en-v1.5").json()["id"] == "BAAI/bge-base-en-v1.5"


def test_unknown_model_path_and_method(router):
    with router.client() as c:
        assert_error(c.post("/v1/embeddings", json={"model": "nope", "input": "x"}), 404, "not_found_error",
                     "model", "model_not_found")
        assert_error(c.get("/v1/nothing-here"), 404, "not_found_error")
        assert_error(c.get("/v1/embeddings"), 405, code="method_not_allowed")
        assert c.get("/health").json() == {"status": "ok"}


UPSTREAM_FAULTS = [
    # (upstream status, upstream body, headers) -> (router status, type, code)
    (400, {"error": {"message": "input too long", "type": "invalid_request_error", "param": "input"}}, {},
     400, "invalid_request_error", "input"),
    (401, {"error": {"message": "Incorrect API key provided: sk-up***789"}}, {}, 502, "upstream_error", None),
    (403, "forbidden", {}, 502, "upstream_error", None),
    (404, {"error": "model not found"}, {}, 404, "not_found_error", "model"),   # seed 003's bare string
    (404, "plain text not found", {}, 404, "not_found_error", "model"),
    (422, {"detail": [{"msg": "bad"}]}, {}, 400, "invalid_request_error", None),
    (429, {"error": {"message": "slow down"}}, {"retry-after": "7"}, 429, "rate_limit_error", None),
    (500, {"error": "boom"}, {}, 502, "upstream_error", None),
    (500, "<html>Internal Server Error</html>", {}, 502, "upstream_error", None),
    (503, {"error": {"message": "overloaded"}}, {}, 503, "overloaded_error", None),
    (504, "", {}, 504, "timeout_error", None),
]


@pytest.mark.parametrize(("status", "body", "headers", "want", "type_", "param"), UPSTREAM_FAULTS)
def test_upstream_errors_are_translated(router, upstream, status, body, headers, want, type_, param):
    upstream.fail_next(status, body, headers)
    with router.client() as c:
        r = c.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "x"})
    error = assert_error(r, want, type_, param)
    assert "sk-up" not in r.text and "sk-upstream" not in r.text
    if status == 429:
        assert r.headers["retry-after"] == "7"
    if status in (401, 403):
        assert "fake" in error["message"]


def test_upstream_timeout_is_504(router, upstream):
    upstream.delay_s = 3  # over the provider's 2 s timeout
    with router.client() as c:
        assert_error(c.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "x"}), 504)


def test_connection_refused_is_503(make_router, upstream):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    router = make_router(config_dict(dead))
    with router.client() as c:
        assert_error(c.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "x"}), 503)


@pytest.mark.parametrize("fault", ["shuffle", "drop_one", "garbage", "nan", "ragged"])
def test_bad_upstream_answers(router, upstream, fault):
    inputs = ["a", "b", "c"]
    if fault == "shuffle":
        upstream.shuffle = True
    elif fault == "drop_one":
        upstream.drop_one = True
    elif fault == "garbage":
        upstream.fail_next(200, b"{not json")
    elif fault == "nan":
        upstream.fail_next(200, b'{"data": [{"index": 0, "embedding": [NaN]}]}')
    elif fault == "ragged":
        upstream.fail_next(200, orjson.dumps({"data": [{"index": 0, "embedding": [1.0, 2.0]},
                                                       {"index": 1, "embedding": [1.0]},
                                                       {"index": 2, "embedding": [1.0, 2.0]}]}))
    with router.client() as c:
        r = c.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": inputs})
    if fault == "shuffle":  # out-of-order data is put back in order
        assert r.status_code == 200
        for d, text in zip(r.json()["data"], inputs):
            np.testing.assert_array_equal(np.float32(d["embedding"]), vector_for("text-embedding-3-small", text))
    else:
        assert_error(r, 502, "upstream_error")


def test_batches_are_chunked_to_max_batch_and_merged_in_order(router, upstream):
    inputs = [f"text {i}" for i in range(150)]  # max_batch 64 -> 3 upstream calls
    with router.client() as c:
        r = c.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": inputs})
    assert r.status_code == 200
    assert sorted(len(q["body"]["input"]) for q in upstream.requests) == [22, 64, 64]
    got = np.float32([d["embedding"] for d in r.json()["data"]])
    np.testing.assert_array_equal(got, np.stack([vector_for("text-embedding-3-small", t) for t in inputs]))


def test_cache_hits_send_only_misses_and_no_cache_bypasses(router, upstream):
    model = "text-embedding-3-small"
    with router.client() as c:
        first = c.post("/v1/embeddings", json={"model": model, "input": ["a", "b"]})
        assert (first.headers["x-cache-hits"], first.headers["x-cache-misses"]) == ("0", "2")
        second = c.post("/v1/embeddings", json={"model": model, "input": ["b", "c", "a", "c"]})
        assert (second.headers["x-cache-hits"], second.headers["x-cache-misses"]) == ("2", "2")
        assert upstream.requests[-1]["body"]["input"] == ["c"]  # repeated misses go up once
        assert first.json()["data"][1]["embedding"] == second.json()["data"][0]["embedding"]
        assert second.json()["data"][1]["embedding"] == second.json()["data"][3]["embedding"]
        third = c.post("/v1/embeddings", json={"model": model, "input": ["a"]}, headers={"cache-control": "no-cache"})
        assert third.headers["x-cache-hits"] == "0" and upstream.requests[-1]["body"]["input"] == ["a"]
        hit = c.post("/v1/embeddings", json={"model": model, "input": ["a"]})
        assert hit.headers["x-cache-hits"] == "1" and hit.headers["x-router-deployment"] == "cache"
        assert hit.json()["usage"]["prompt_tokens"] > 0
    assert len(upstream.requests) == 3


def test_one_log_line_per_request_without_secrets(router, upstream):
    with router.client() as c:
        r = c.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": ["a", "b"]},
                   headers={"x-request-id": "req-42"})
        assert r.headers["x-request-id"] == "req-42"
        c.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "a"})
    lines = [orjson.loads(line) for line in router.log_lines() if b'"embeddings"' in line]
    assert len(lines) == 2
    first = lines[0]
    for field in ("request_id", "key", "model", "deployment", "inputs", "tokens", "cache_hits", "status",
                  "total_ms", "upstream_ms"):
        assert field in first, field
    assert first["request_id"] == "req-42" and first["key"] == "test" and first["inputs"] == 2
    assert lines[1]["cache_hits"] == 1
    text = router.logs.getvalue()
    assert KEY.encode() not in text and b"sk-upstream-secret" not in text


def test_ready_and_health(router):
    assert httpx.get(f"{router.url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{router.url}/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_not_ready_while_configured_redis_is_down(make_router, upstream_url):
    from tests.redis_servers import PrivateRedis

    server = PrivateRedis().start()
    config = config_dict(upstream_url)
    config.update(cache={"backend": "redis"}, redis={"url": server.url, "timeout_s": 0.3})
    router = make_router(config)
    try:
        assert httpx.get(f"{router.url}/ready").status_code == 200
        server.stop()
        down = httpx.get(f"{router.url}/ready")
        assert down.status_code == 503 and down.json()["error"]["code"] == "not_ready"
        assert "Redis" in down.json()["error"]["message"]
    finally:
        server.stop()


def test_start_up_heap_is_frozen_out_of_the_collector(make_router, upstream_url):
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    make_router(config_dict(upstream_url))  # returns once the lifespan's start-up is done
    assert gc.get_freeze_count() > 0
