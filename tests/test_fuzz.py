"""Raw fuzz: bodies and headers no schema would write (hypothesis), against a running router.
Whatever arrives: no 5xx but an upstream's 502/503/504, every non-200 body ErrorData, no
answer slower than 10 s, no "unhandled error" logged, and memory back within 50 MB.
`make fuzz` runs it with FUZZ_EXAMPLES=100000 (shared with tests/test_openapi.py)."""

from __future__ import annotations

import json
import os
import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import KEY, config_dict
from tests.processes import RouterProcess

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0")) // 2 or 1500
MODELS = ["text-embedding-3-small", "bge-base-en-v1.5", "BAAI/bge-base-en-v1.5", "", "x" * 300]
PATHS = ["/v1/embeddings", "/embeddings", "/v1/models", "/v1/models/text-embedding-3-small", "/v1/embeddings/",
         "/admin/status", "/admin/reload", "/health", "/ready", "/nope", "/v1/models/" + "m" * 5000]

scalars = st.none() | st.booleans() | st.integers(-2**63, 2**64) | st.floats() | st.text(max_size=50)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=6)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=6), max_leaves=30)
inputs = (st.text(max_size=200) | st.lists(st.text(max_size=50), max_size=20)
          | st.lists(st.integers(-5, 2**32), max_size=20)
          | st.lists(st.lists(st.integers(-5, 2**32), max_size=8), max_size=5) | json_values)
requests = st.fixed_dictionaries(
    {"model": st.sampled_from(MODELS) | scalars, "input": inputs},
    optional={"encoding_format": st.sampled_from(["float", "base64", "binary", ""]) | scalars,
              "dimensions": st.integers(-3, 40) | scalars, "user": scalars,
              "extra": json_values})
bodies = (requests.map(lambda r: json.dumps(r).encode())   # stdlib: big integers, NaN, lone surrogates
          | st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
header_text = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=60)  # what h11 lets a client send
headers = st.fixed_dictionaries({}, optional={
    "authorization": st.sampled_from([f"Bearer {KEY}", "Bearer", "Basic x", f"bearer  {KEY}"]) | header_text,
    "content-type": st.sampled_from(["application/json", "text/plain", "multipart/form-data"]) | header_text,
    "x-request-id": header_text, "cache-control": st.sampled_from(["no-cache", ""]) | header_text,
    "accept-encoding": header_text})


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


@pytest.fixture
def router_process(upstream, upstream_url, tmp_path, log_archive):
    """A router in its own process, so its memory is its own (hypothesis's is not counted)."""
    with RouterProcess(config_dict(upstream_url), tmp_path) as process:
        log_archive.add(process.log_path)
        yield process


def test_raw_bodies_and_headers(router_process):
    router = router_process
    slowest, statuses = 0.0, set()
    with httpx.Client(base_url=router.url, timeout=15) as client:
        for i in range(200):  # warm: caches, pools and allocator arenas at their working size
            client.post("/v1/embeddings", json={"model": MODELS[0], "input": [f"warm {i}"] * 20},
                        headers={"authorization": f"Bearer {KEY}"})
        before = rss_mb(router.pid)

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(path=st.sampled_from(PATHS), method=st.sampled_from(["POST", "GET", "PUT"]), body=bodies,
               headers=headers)
        def check(path: str, method: str, body: bytes, headers: dict) -> None:
            nonlocal slowest
            started = time.monotonic()
            response = client.request(method, path, content=body if method != "GET" else None, headers=headers)
            slowest = max(slowest, time.monotonic() - started)
            statuses.add(response.status_code)
            assert response.status_code < 500 or response.status_code in (502, 503, 504), response.text
            if response.status_code != 200:
                assert set(response.json()) <= {"error", "detail"}, response.text
                assert set(response.json()["error"]) == {"message", "type", "param", "code"}

        check()
    assert slowest < 10
    assert {200, 400, 401, 404} <= statuses  # the fuzz reached past the door, not only bounced off it
    logs = router.log_path.read_bytes()
    assert b"unhandled error" not in logs and b"Traceback" not in logs
    assert rss_mb(router.pid) - before < 50
