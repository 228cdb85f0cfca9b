"""Limits, deployment caps, the cache and usage on a real Redis Cluster (3 masters, 3
replicas) and on a Sentinel-watched master and replica, through a master's death."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import pytest

from tests.conftest import KEY, config_dict, sha
from tests.redis_servers import PrivateCluster, PrivateSentinel, unique_prefix

ADMIN_KEY = "sk-admin-secret-42"
FRESH_KEY, LOOSE_KEY = "sk-temp-fresh-key", "sk-temp-loose-key"
RECOVERY_S = 15  # the README's bound: limits are counted again this soon after a master dies


def topology(kind: str, directory):
    return PrivateCluster(directory).start_cluster() if kind == "cluster" else \
        PrivateSentinel(directory).start_sentinel()


def router_config(upstream_url: str, redis_url: str, prefix: str) -> dict:
    config = config_dict(upstream_url)
    config["keys"][0]["limits"] = {"rpm": 5}
    config["keys"] += [{"name": "fresh", "sha256": sha(FRESH_KEY), "limits": {"rpm": 2}},
                       {"name": "loose", "sha256": sha(LOOSE_KEY), "limits": {"rpm": 100_000}}]
    config["admin_keys"] = [{"name": "ops", "sha256": sha(ADMIN_KEY)}]
    config["models"]["bge-base-en-v1.5"]["deployments"][0]["max_concurrency"] = 8  # a shared cap in Redis
    config.update(limits={"backend": "redis"}, cache={"backend": "redis"}, usage={"flush_s": 0.5},
                  redis={"url": redis_url, "prefix": prefix, "timeout_s": 0.5})
    return config


def embed(router, key: str, text: str, model: str = "bge-base-en-v1.5") -> httpx.Response:
    return httpx.post(f"{router.url}/v1/embeddings", json={"model": model, "input": text},
                      headers={"authorization": f"Bearer {key}"}, timeout=30)


@pytest.mark.parametrize("kind", ["cluster", "sentinel"])
def test_shared_state_works_and_survives_a_master_dying(kind, make_router, make_upstream, tmp_path):
    servers = topology(kind, tmp_path)
    try:
        _, upstream_url = make_upstream()
        config = router_config(upstream_url, servers.url, unique_prefix())
        first, second = make_router(config), make_router(config)

        # the keys' limits, shared by both routers
        statuses = [embed(r, KEY, f"limit {i}").status_code for i, r in zip(range(6), [first, second] * 3)]
        assert statuses == [200] * 5 + [429], statuses
        # the cache: what one router computed, the other finds in Redis
        assert embed(first, LOOSE_KEY, "cached text").headers["x-cache-hits"] == "0"
        assert embed(second, LOOSE_KEY, "cached text").headers["x-cache-hits"] == "1"
        # usage: both routers' counts in one place
        time.sleep(1.2)
        rows = httpx.get(f"{first.url}/admin/usage", params={"group_by": "key"},
                         headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=30).json()["data"]
        assert sum(r["requests"] for r in rows if r["key"] == "test") == 6

        # a master dies under load: nobody gets a 500, and limits are counted again within RECOVERY_S
        seen: Counter = Counter()
        stop = threading.Event()

        def load() -> None:
            i = 0
            while not stop.is_set():
                seen[embed([first, second][i % 2], LOOSE_KEY, f"load {i}").status_code] += 1
                i += 1

        worker = threading.Thread(target=load)
        worker.start()
        time.sleep(0.5)
        victim = servers.master_of(f"{config['redis']['prefix']}limits:{{fresh}}:rpm") if kind == "cluster" \
            else servers.current_master()
        servers.kill(victim)
        died = time.monotonic()
        # `fresh` (rpm 2) was never used: while Redis is out its requests pass unchecked
        # (on_redis_error: allow); once it is back, the third counted one is refused.
        fresh: Counter = Counter()
        while (status := embed(first, FRESH_KEY, f"fresh {time.monotonic()}").status_code) != 429:
            fresh[status] += 1
            assert time.monotonic() - died < RECOVERY_S, f"limits not counted again after {RECOVERY_S} s: {fresh}"
            time.sleep(0.2)
        recovered_s = time.monotonic() - died
        stop.set()
        worker.join()
        assert set(seen) == {200}, seen
        print(f"{kind}: limits counted again {recovered_s:.1f} s after the master died; {sum(seen.values())} "
              "requests served meanwhile")
    finally:
        servers.stop()
