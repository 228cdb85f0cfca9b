"""The console's per-second ring: what it keeps, what it hands back, and what time forgets."""

from __future__ import annotations

from router.outcome import Trace
from router.traffic import Traffic


def outcome(total_ms: float, status: int = 200, error: str | None = None, hits: int = 0):
    return Trace("r", key="k", inputs=2, cache_hits=hits).finish(status, error, total_ms)


def test_seconds_are_reported_once_finished_with_their_figures():
    now = [1_000.2]
    traffic = Traffic(seconds=60, clock=lambda: now[0], seed=1)
    for ms in (1.0, 2.0, 3.0, 100.0):
        traffic.record(outcome(ms, hits=1))
    traffic.record(outcome(5.0, 429, "rate_limit_exceeded"))
    assert traffic.since()["seconds"] == []  # the current second is still filling
    now[0] = 1_001.5
    second = traffic.since()["seconds"][0]
    assert second["t"] == 1000 and second["requests"] == 5 and second["inputs"] == 10
    assert second["cache_hits"] == 4 and second["errors"] == {"rate_limit_exceeded": 1}
    assert second["p50_ms"] == 3.0 and second["p99_ms"] == 100.0
    assert traffic.since(after=1000)["seconds"] == []  # the console asks only for what is new


def test_the_ring_forgets_after_its_window_and_reuses_slots():
    now = [2_000.0]
    traffic = Traffic(seconds=10, clock=lambda: now[0])
    traffic.record(outcome(1.0))
    now[0] += 10  # the same slot, a window later
    traffic.record(outcome(7.0))
    now[0] += 1
    seconds = traffic.since()["seconds"]
    assert [(s["t"], s["p50_ms"]) for s in seconds] == [(2010, 7.0)]


def test_a_busy_second_keeps_a_bounded_sample():
    now = [3_000.0]
    traffic = Traffic(seconds=10, clock=lambda: now[0], seed=7)
    for i in range(10_000):
        traffic.record(outcome(float(i % 100)))
    now[0] += 1
    second = traffic.since()["seconds"][0]
    assert second["requests"] == 10_000
    assert 35 <= second["p50_ms"] <= 65 and second["p99_ms"] >= 90  # a fair sample of 0..99


def test_after_must_be_epoch_seconds(make_router, upstream_url):
    import httpx

    from tests.conftest import config_dict, sha

    config = config_dict(upstream_url)
    config["admin_keys"] = [{"name": "ops", "sha256": sha("sk-admin-secret-42")}]
    router = make_router(config)
    for after, status in (("1796000000", 200), ("-5", 400), ("9" * 5000, 400), ("12.5", 400)):
        r = httpx.get(f"{router.url}/admin/traffic", params={"after": after},
                      headers={"authorization": "Bearer sk-admin-secret-42"})
        assert r.status_code == status, (after[:20], r.text[:200])
