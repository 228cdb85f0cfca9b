"""A deployment's circuit breaker: healthy -> cooling down -> probing -> healthy.

    healthy       calls flow; N consecutive failures, or an error rate over a
                  window, trip it
    cooling_down  skipped by selection until the cooldown ends
    probing       one call at a time goes through; its success heals the
                  deployment, its failure starts another cooldown

Pure state, no I/O: the caller passes the clock reading and logs the
transitions this returns.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from router.reader import doc, positive

HEALTHY, COOLING_DOWN, PROBING = "healthy", "cooling_down", "probing"


@dataclass(frozen=True)
class CooldownPolicy:
    failures: int = field(default=5, metadata=doc("consecutive failed calls that cool a deployment down...",
                                                  check=positive))
    error_rate: float = field(default=0.5, metadata=doc(
        "...or this share of failed calls...", kind="0-1",
        check=lambda r: None if 0 < r <= 1 else "must be over 0 and at most 1"))
    min_calls: int = field(default=20, metadata=doc("...among at least this many calls...", check=positive))
    window_s: float = field(default=60.0, metadata=doc("...within this window", check=positive))
    cooldown_s: float = field(default=30.0, metadata=doc(
        "how long a cooled-down deployment is skipped; then one probe call decides. A model with one "
        "deployment is never taken out of service; when all of a model's deployments cool down, requests "
        "get 503 `no_healthy_deployment` at once", check=positive))


@dataclass(frozen=True)
class Transition:
    state: str
    reason: str


class Breaker:
    def __init__(self, policy: CooldownPolicy) -> None:
        self.policy = policy
        self.state = HEALTHY
        self.consecutive_failures = 0
        self.cooldown_until = 0.0
        self.trips = 0
        self._probe_in_flight = False
        self._window: deque[tuple[float, bool]] = deque()  # (time, ok) of recent calls
        self._window_failures = 0

    def usable(self, now: float) -> bool:
        """Whether a call may go to this deployment now."""
        if self.state == HEALTHY:
            return True
        return now >= self.cooldown_until and not self._probe_in_flight

    def cooldown_left(self, now: float) -> float:
        return max(0.0, self.cooldown_until - now) if self.state != HEALTHY else 0.0

    def started(self, now: float) -> Transition | None:
        """A call begins. After a cooldown it is the probe: the only call until it ends."""
        if self.state == HEALTHY or now < self.cooldown_until:
            return None
        self._probe_in_flight = True
        if self.state == COOLING_DOWN:
            self.state = PROBING
            return Transition(PROBING, "cooldown over; one probe call decides")
        return None

    def succeeded(self, now: float) -> Transition | None:
        self._record(now, ok=True)
        self.consecutive_failures = 0
        self._probe_in_flight = False
        if self.state == HEALTHY:
            return None
        self.state = HEALTHY
        self._window.clear()  # the errors that tripped it must not trip it again at once
        self._window_failures = 0
        return Transition(HEALTHY, "a call succeeded")

    def failed(self, now: float) -> Transition | None:
        self._record(now, ok=False)
        self.consecutive_failures += 1
        if self.state != HEALTHY:
            if not self._probe_in_flight:
                return None  # a call started before the trip, ending late: already cooling down
            self._probe_in_flight = False
            return self._trip(now, "the probe call failed")
        p = self.policy
        if self.consecutive_failures >= p.failures:
            return self._trip(now, f"{self.consecutive_failures} consecutive failures")
        calls = len(self._window)
        if calls >= p.min_calls and self._window_failures / calls >= p.error_rate:
            return self._trip(now, f"{self._window_failures} of {calls} calls failed in {p.window_s:g} s")
        return None

    def abandoned(self) -> None:
        """A call ended without an answer either way (cancelled): another probe may go."""
        self._probe_in_flight = False

    def error_rate(self, now: float) -> float:
        self._expire(now)
        return self._window_failures / len(self._window) if self._window else 0.0

    def calls_in_window(self, now: float) -> int:
        self._expire(now)
        return len(self._window)

    def _trip(self, now: float, reason: str) -> Transition:
        self.state = COOLING_DOWN
        self.cooldown_until = now + self.policy.cooldown_s
        self.trips += 1
        return Transition(COOLING_DOWN, reason)

    def _record(self, now: float, ok: bool) -> None:
        self._window.append((now, ok))
        self._window_failures += not ok
        self._expire(now)

    def _expire(self, now: float) -> None:
        horizon = now - self.policy.window_s
        while self._window and self._window[0][0] < horizon:
            _, ok = self._window.popleft()
            self._window_failures -= not ok
