"""The circuit breaker's state machine, on a clock the test controls."""

from __future__ import annotations

from router.breaker import COOLING_DOWN, HEALTHY, PROBING, Breaker, CooldownPolicy

POLICY = CooldownPolicy(failures=3, error_rate=0.5, min_calls=10, window_s=60, cooldown_s=30)


def test_consecutive_failures_trip_it_and_a_success_resets_the_count():
    b = Breaker(POLICY)
    assert b.failed(0) is None and b.failed(1) is None
    assert b.succeeded(2) is None and b.consecutive_failures == 0
    assert b.failed(3) is None and b.failed(4) is None
    trip = b.failed(5)
    assert trip is not None and trip.state == COOLING_DOWN and "3 consecutive" in trip.reason
    assert not b.usable(5) and not b.usable(34.9) and b.cooldown_left(20) == 15


def test_an_error_rate_over_the_window_trips_it():
    b = Breaker(POLICY)
    for t in range(10):  # alternate: never 3 in a row, but half of 10 calls fail
        transition = b.failed(t) if t % 2 else b.succeeded(t)
    assert transition is not None and transition.state == COOLING_DOWN and "5 of 10" in transition.reason


def test_old_calls_leave_the_window():
    b = Breaker(POLICY)
    for t in range(9):
        b.failed(t) if t % 3 == 0 else b.succeeded(t)
    assert b.calls_in_window(9) == 9
    assert b.calls_in_window(100) == 0 and b.error_rate(100) == 0.0
    for t in range(100, 110):  # 10 new calls, 2 failures: under the rate
        assert (b.failed(t) if t % 5 == 0 else b.succeeded(t)) is None


def test_after_the_cooldown_one_probe_decides():
    b = Breaker(POLICY)
    for t in range(3):
        b.failed(t)
    assert b.usable(32)
    assert b.started(32).state == PROBING
    assert not b.usable(32)  # one probe at a time
    again = b.failed(33)
    assert again.state == COOLING_DOWN and "probe" in again.reason and b.cooldown_until == 63
    assert b.started(63).state == PROBING
    healed = b.succeeded(64)
    assert healed.state == HEALTHY and b.usable(64) and b.trips == 2
    assert b.failed(65) is None  # the failures that tripped it are forgotten


def test_a_cancelled_probe_lets_another_go():
    b = Breaker(POLICY)
    for t in range(3):
        b.failed(t)
    b.started(40)
    assert not b.usable(40)
    b.abandoned()
    assert b.usable(40) and b.state == PROBING


def test_a_late_failure_of_a_call_started_before_the_trip_does_not_extend_the_cooldown():
    b = Breaker(POLICY)
    for t in range(3):
        b.failed(t)
    assert b.failed(10) is None and b.cooldown_until == 32
