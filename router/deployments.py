"""What the router knows of each deployment while it serves: calls in flight,
recent latency, its circuit breaker, its own caps, and Retry-After pauses.

One `DeploymentState` per (public model, provider, upstream model). It lives
across config reloads while the deployment's settings stay the same, so a
reload neither forgets a sick upstream nor resets its caps.

The caps (`max_concurrency`, `rpm`, `tpm`) keep the router under a provider's
own limits. They are counted in this process, and with `limits.backend: redis`
in Redis too (`router.deployment_caps`), so N replicas together keep one cap.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass

from router.breaker import HEALTHY, Breaker, CooldownPolicy, Transition
from router.coalesce import Coalescer
from router.settings import Deployment

_EWMA_ALPHA = 0.3  # weight of the newest latency sample
_RECENT = 64       # successful calls whose latency the admin view's p50 is taken over


class _Bucket:
    """A per-minute allowance that refills evenly; it may go negative when a call
    turns out to cost more than its estimate."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.level = float(per_minute)
        self.rate = per_minute / 60.0
        self.updated: float | None = None  # on the event loop's clock, from the first call

    def wait_s(self, amount: float, now: float) -> float:
        self._refill(now)
        need = min(amount, self.capacity) - self.level  # a call larger than the whole bucket waits for a full one
        return max(0.0, need / self.rate)

    def take(self, amount: float, now: float) -> None:
        self._refill(now)
        self.level -= amount

    def _refill(self, now: float) -> None:
        if self.updated is not None:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now


@dataclass(frozen=True)
class Unavailable:
    """Why a deployment cannot take a call now, and for how long if that is known."""

    reason: str             # cooling_down | probing | max_concurrency | rpm | tpm | retry_after
    wait_s: float | None    # None: not worth waiting for within one request


class DeploymentState:
    def __init__(self, model: str, deployment: Deployment, policy: CooldownPolicy,
                 coalescer: Coalescer | None = None) -> None:
        self.model = model
        self.coalescer = coalescer            # set where concurrent chunks share upstream calls
        self.deployment = deployment
        self.label = f"{deployment.provider}/{deployment.model}"
        self.breaker = Breaker(policy)
        self.in_flight = 0
        self.latency_s: float | None = None   # EWMA of successful calls; None until the first
        self.recent_s: deque[float] = deque(maxlen=_RECENT)
        self.calls = 0                        # upstream calls begun, and the inputs they carried
        self.inputs_sent = 0
        self.paused_until = 0.0               # an upstream's Retry-After
        self._rpm = _Bucket(deployment.rpm) if deployment.rpm else None
        self._tpm = _Bucket(deployment.tpm) if deployment.tpm else None

    def unavailable(self, now: float, tokens: int, *, use_breaker: bool, caps: bool = True) -> Unavailable | None:
        """None when a call of `tokens` may start now (`caps=False`: regardless of the caps)."""
        if use_breaker and not self.breaker.usable(now):
            left = self.breaker.cooldown_left(now)
            return Unavailable("cooling_down", None) if left > 0 else Unavailable("probing", None)
        if now < self.paused_until:
            return Unavailable("retry_after", self.paused_until - now)
        if not caps:
            return None
        cap = self.deployment.max_concurrency
        if cap is not None and self.in_flight >= cap:
            return Unavailable("max_concurrency", math.inf)  # until a call ends
        if self._rpm is not None and (wait := self._rpm.wait_s(1, now)) > 0:
            return Unavailable("rpm", wait)
        if self._tpm is not None and (wait := self._tpm.wait_s(tokens, now)) > 0:
            return Unavailable("tpm", wait)
        return None

    def begin(self, now: float, tokens: int, inputs: int = 1) -> Transition | None:
        self.in_flight += 1
        self.calls += 1
        self.inputs_sent += inputs
        if self._rpm is not None:
            self._rpm.take(1, now)
        if self._tpm is not None:
            self._tpm.take(tokens, now)
        return self.breaker.started(now)

    def succeeded(self, now: float, elapsed_s: float, estimated: int, actual: int) -> Transition | None:
        self.in_flight -= 1
        self.latency_s = elapsed_s if self.latency_s is None else (
            _EWMA_ALPHA * elapsed_s + (1 - _EWMA_ALPHA) * self.latency_s)
        self.recent_s.append(elapsed_s)
        if self._tpm is not None:
            self._tpm.take(actual - estimated, now)  # settle the estimate with the real count
        return self.breaker.succeeded(now)

    def failed(self, now: float, retry_after: float | None) -> Transition | None:
        self.in_flight -= 1
        if retry_after:
            self.paused_until = max(self.paused_until, now + retry_after)
        return self.breaker.failed(now)

    def abandoned(self) -> None:
        """The call ended with no verdict on the deployment (cancelled, or the client's own error)."""
        self.in_flight -= 1
        self.breaker.abandoned()

    def health(self, now: float) -> dict:
        """The admin view of this deployment."""
        b = self.breaker
        return {
            "state": b.state,
            "cooldown_left_s": round(b.cooldown_left(now), 3) if b.state != HEALTHY else 0.0,
            "consecutive_failures": b.consecutive_failures,
            "error_rate": round(b.error_rate(now), 4),
            "calls_in_window": b.calls_in_window(now),
            "cooldowns": b.trips,
            "in_flight": self.in_flight,
            "latency_ms": round(self.latency_s * 1000, 2) if self.latency_s is not None else None,
            "latency_p50_ms": round(statistics.median(self.recent_s) * 1000, 2) if self.recent_s else None,
            "paused_for_s": round(max(0.0, self.paused_until - now), 3),
            "upstream_calls": self.calls,
            "inputs_per_call": round(self.inputs_sent / self.calls, 2) if self.calls else None,
            "coalesce_ms": round(self.coalescer.wait_s * 1000, 3) if self.coalescer is not None else 0,
        }
