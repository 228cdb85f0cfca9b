"""Secrets never leave the process: an upstream that echoes the credential it was sent, in
any error shape, hands it to no client, no log line and no metric."""

from __future__ import annotations

import gc
import logging
import time

import httpx
import pytest

from router.redact import MASK, Redactor, secrets_in
from tests.conftest import KEY, config_dict
from tests.fakes.openai_upstream import API_KEY

ECHO = f"Authorization: Bearer {API_KEY}"
SHAPES = {
    "400 ErrorData": (400, {"error": {"message": f"bad input; you sent {ECHO}", "type": "invalid_request_error",
                                      "param": API_KEY, "code": None}}),
    "401": (401, {"error": {"message": f"invalid key {API_KEY}"}}),
    "404 detail": (404, {"detail": f"no such model (headers: {ECHO})"}),
    "429": (429, {"message": ECHO}),
    "500 plain text": (500, f"Internal error while handling {ECHO}"),
    "502 garbage": (502, b"\x00\xff" + ECHO.encode() + b"\x9c{"),
    "400 bare string": (400, f'"{ECHO}"'),
    "400 key split by a long message": (400, {"error": {"message": "x" * 290 + API_KEY}}),
}


def test_the_redactor_masks_configured_secrets_and_key_shapes():
    redact = Redactor(["s3cr3t-value", "abc"])  # too short to mask safely: ignored
    assert redact("token s3cr3t-value and abc") == f"{MASK} and abc"
    assert redact("Authorization: Bearer eyJhbGciOi.xyz") == f"Authorization: {MASK}"
    assert redact("key sk-proj-AAAA1111bbbb") == f"key {MASK}"
    assert redact("a" * 1000, limit=50).endswith("…") and len(redact("a" * 1000, limit=50)) == 50
    upstream = Redactor(upstream=True)
    assert MASK in upstream("co key 3bFz8YqLr0d9PqXvW2mN7sK4tH6gJ1eA5cB")
    assert Redactor()("request 0123456789abcdef0123456789abcdef") == "request 0123456789abcdef0123456789abcdef"


def test_secrets_in_settings_are_the_fields_kept_out_of_repr():
    from router.providers.openai import OpenAISettings

    settings = OpenAISettings(base_url="http://x/v1", api_key="sk-one", headers={"x-api-key": "two-secret"})
    assert set(secrets_in(settings)) == {"sk-one", "two-secret"}


@pytest.mark.parametrize("shape", SHAPES)
def test_an_echoed_credential_reaches_no_client(make_router, upstream, upstream_url, shape):
    router = make_router(config_dict(upstream_url))
    status, body = SHAPES[shape]
    upstream.fail_next(status, body=body, times=8)
    with router.client(KEY) as c:
        response = c.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "hi"})
    assert response.status_code >= 400
    assert set(response.json()) == {"error", "detail"}
    raw = response.content + str(response.headers).encode()
    assert API_KEY.encode() not in raw and API_KEY[:12].encode() not in raw
    assert len(response.json()["error"]["message"]) <= 400
    metrics = httpx.get(f"{router.url}/metrics").text
    assert API_KEY not in metrics
    assert not [line for line in router.log_lines() if API_KEY.encode() in line]


def test_a_chunked_request_failing_part_way_logs_no_sibling_tracebacks(make_router, upstream, upstream_url,
                                                                       caplog):
    config = config_dict(upstream_url)
    config["providers"]["fake"]["max_batch"] = 2
    router = make_router(config)
    upstream.delay_s = 0.05  # every chunk's call is in flight when the faults land
    upstream.fail_next(400, body={"error": {"message": f"refused: {ECHO}"}}, times=8)
    with caplog.at_level(logging.ERROR, logger="asyncio"), router.client(KEY) as c:
        response = c.post("/v1/embeddings", json={"model": "text-embedding-3-small",
                                                  "input": [f"part {i}" for i in range(16)]})
        assert response.status_code == 400
        time.sleep(0.3)
        gc.collect()
        time.sleep(0.1)
    assert API_KEY not in response.text
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
    assert not [line for line in router.log_lines() if b"Traceback" in line or API_KEY.encode() in line]
