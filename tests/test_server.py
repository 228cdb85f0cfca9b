"""Connections: a client cannot hold sockets open without sending a request, cannot open more
than the cap, and hanging up at any point is a 499, never a 500 or a traceback."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from tests.conftest import KEY, config_dict
from tests.test_metrics import sample


@pytest.fixture
def guarded(make_router, upstream, upstream_url):
    config = config_dict(upstream_url)
    config["server"].update(header_timeout_s=0.5, keepalive_timeout_s=0.5, max_connections=8)
    return make_router(config)


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes `sock` within `seconds` (reading whatever it sent first)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


@pytest.mark.parametrize("sent", [b"", b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Ty"])
def test_a_connection_without_complete_headers_is_closed(guarded, sent):
    with connect(guarded.url) as sock:
        sock.sendall(sent)
        started = time.monotonic()
        assert closed_within(sock, 3)
        assert time.monotonic() - started < 2


def test_an_idle_keep_alive_connection_is_closed(guarded):
    with connect(guarded.url) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.1)
        assert b"200 OK" in sock.recv(65536)
        assert closed_within(sock, 3)


def test_connections_over_the_cap_get_a_fast_error_data_503(guarded):
    idle = [connect(guarded.url) for _ in range(10)]
    try:
        time.sleep(0.1)
        response = httpx.get(f"{guarded.url}/health", timeout=5)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "too_many_connections"
        assert response.headers["retry-after"] == "1"
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(f"{guarded.url}/health", timeout=5).status_code == 200


def test_a_trailing_slash_is_a_404_not_a_redirect_built_from_host(guarded):
    response = httpx.post(f"{guarded.url}/v1/embeddings/", headers={"host": "evil.example",
                                                                    "authorization": f"Bearer {KEY}"},
                          json={"model": "text-embedding-3-small", "input": "x"}, follow_redirects=False)
    assert response.status_code == 404 and "location" not in response.headers
    assert response.json()["error"]["type"] == "not_found_error"


def test_a_hang_up_while_uploading_is_a_499(guarded):
    for _ in range(3):
        with connect(guarded.url) as sock:
            sock.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Authorization: Bearer " + KEY.encode() + b"\r\nContent-Length: 5000\r\n\r\n{\"model\"")
            time.sleep(0.1)
    time.sleep(0.3)
    metrics = httpx.get(f"{guarded.url}/metrics").text
    assert sample(metrics, 'embeddings_router_requests_total{key="test",model="",status="499"}') == 3
    assert "status=\"500\"" not in metrics
    logs = guarded.logs.getvalue()
    assert b"unhandled error" not in logs and b"Traceback" not in logs and b'"status":499' in logs
