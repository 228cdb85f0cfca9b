"""Deployment caps across replicas: two router processes on one Redis together keep one
`rpm` and one `max_concurrency` per deployment, as one process would."""

from __future__ import annotations

import contextlib
import itertools
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import KEY, config_dict
from tests.processes import RouterProcess
from tests.redis_servers import SHARED_URL, delete_prefix, unique_prefix

MODEL = "text-embedding-3-small"


@pytest.fixture
def two_replicas(make_upstream, tmp_path, log_archive):
    prefix = unique_prefix()

    @contextlib.contextmanager
    def start(delay_s: float = 0.0, **caps: int):
        upstream, url = make_upstream(delay_s=delay_s)
        config = config_dict(url)
        config["models"][MODEL]["deployments"][0].update(caps)
        config["server"]["request_timeout_s"] = 3
        config.update(limits={"backend": "redis"}, cache={"backend": "none"},
                      redis={"url": SHARED_URL, "prefix": prefix})
        with RouterProcess(config, tmp_path) as first, RouterProcess(config, tmp_path) as second:
            log_archive.add(first.log_path)
            log_archive.add(second.log_path)
            yield upstream, [first, second]

    yield start
    delete_prefix(SHARED_URL, prefix)


def post(url: str, text: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/embeddings", json={"model": MODEL, "input": text},
                      headers={"authorization": f"Bearer {KEY}"}, timeout=30)


def test_two_replicas_share_one_rpm(two_replicas):
    with two_replicas(rpm=6) as (upstream, routers):
        answers = [post(router.url, f"text {i}") for i, router in zip(range(12), itertools.cycle(routers))]
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 6 + [503] * 6, statuses
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 503} == {"deployments_busy"}
    assert len(upstream.requests) == 6  # one bucket for both, not 6 each


def test_two_replicas_never_exceed_max_concurrency_together(two_replicas):
    with two_replicas(delay_s=0.3, max_concurrency=2) as (upstream, routers), ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: post(routers[i % 2].url, f"slow {i}"), range(8)))
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers if a.status_code != 200]
    assert upstream.max_in_flight == 2
