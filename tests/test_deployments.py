"""A deployment's own caps and pauses, on a clock the test controls."""

from __future__ import annotations

from router.breaker import CooldownPolicy
from router.config import Deployment
from router.deployments import DeploymentState


def state(**caps: int) -> DeploymentState:
    return DeploymentState("m", Deployment("p", "m", **caps), CooldownPolicy(failures=2, cooldown_s=10))


def test_max_concurrency():
    s = state(max_concurrency=2)
    s.begin(0, 0)
    s.begin(0, 0)
    assert s.unavailable(0, 0, use_breaker=True).reason == "max_concurrency"
    s.succeeded(1, 1.0, 0, 0)
    assert s.unavailable(1, 0, use_breaker=True) is None and s.in_flight == 1


def test_rpm_refills_evenly():
    s = state(rpm=60)
    for _ in range(60):
        assert s.unavailable(0, 0, use_breaker=True) is None
        s.begin(0, 0)
        s.abandoned()
    why = s.unavailable(0, 0, use_breaker=True)
    assert why.reason == "rpm" and why.wait_s == 1.0
    assert s.unavailable(1.0, 0, use_breaker=True) is None


def test_tpm_is_settled_with_the_real_count():
    s = state(tpm=600)
    s.begin(0, 100)
    s.succeeded(0, 0.1, 100, 550)  # the call cost 550, not the 100 estimated
    why = s.unavailable(0, 100, use_breaker=True)
    assert why.reason == "tpm" and why.wait_s == 5.0  # 50 left; 50 more at 10 tokens/s


def test_retry_after_pauses_the_deployment():
    s = state()
    s.begin(0, 0)
    s.failed(0, retry_after=2.0)
    why = s.unavailable(1, 0, use_breaker=True)
    assert why.reason == "retry_after" and why.wait_s == 1.0
    assert s.unavailable(2, 0, use_breaker=True) is None


def test_cooling_down_is_not_waited_for_and_ignored_without_a_breaker():
    s = state()
    for t in (0, 1):
        s.begin(t, 0)
        s.failed(t, None)
    why = s.unavailable(2, 0, use_breaker=True)
    assert why.reason == "cooling_down" and why.wait_s is None
    assert s.unavailable(2, 0, use_breaker=False) is None


def test_health_view_and_latency_ewma():
    s = state()
    s.begin(0, 0)
    s.succeeded(0, 0.1, 0, 0)
    s.begin(0, 0)
    s.succeeded(0, 0.2, 0, 0)
    view = s.health(0)
    assert view["latency_ms"] == 130.0 and view["state"] == "healthy" and view["in_flight"] == 0
