"""Per-key limits: requests/min, tokens/min, concurrent requests (one process).

Token buckets that refill continuously: a key with rpm 60 may burst 60
requests, then one a second. Tokens are estimated before the call and
reconciled with the real count after it. Over a limit: 429 ErrorData as
OpenAI sends it (`type` "requests" or "tokens"), with Retry-After; every
answer carries the x-ratelimit-* headers OpenAI sends.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from router.auth import Principal
from router.errors import RateLimited


@dataclass
class _Bucket:
    capacity: float
    level: float
    stamp: float

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.capacity / 60.0)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` is available (amount capped at capacity)."""
        missing = min(amount, self.capacity) - self.level
        return max(0.0, missing * 60.0 / self.capacity)

    def reset_in(self) -> float:
        return (self.capacity - self.level) * 60.0 / self.capacity


@dataclass
class _KeyState:
    requests: _Bucket | None
    tokens: _Bucket | None
    in_flight: int = 0


@dataclass
class Admission:
    """One admitted request; leaving it returns the concurrency slot and settles its tokens."""

    state: _KeyState
    estimated: int
    headers: dict[str, str] = field(default_factory=dict)
    done: bool = False

    actual: int | None = None  # the real token count, once known

    def __enter__(self) -> Admission:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.done:
            return
        self.done = True
        self.state.in_flight -= 1
        if self.state.tokens is not None and self.actual is not None:
            self.state.tokens.level -= self.actual - self.estimated  # may go below zero: paid next time


class MemoryLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._states: dict[str, _KeyState] = {}

    def admit(self, principal: Principal, estimated_tokens: int) -> Admission:
        limits = principal.limits
        now = self._clock()
        state = self._state(principal, now)
        for bucket in (state.requests, state.tokens):
            if bucket is not None:
                bucket.refill(now)
        headers = _headers(state)
        if limits.concurrency is not None and state.in_flight >= limits.concurrency:
            raise RateLimited(f"Too many concurrent requests for key '{principal.name}': limit "
                              f"{limits.concurrency}. Retry when one finishes.", type="requests",
                              retry_after=1, headers=headers)
        if state.requests is not None and state.requests.level < 1:
            wait = state.requests.wait_for(1)
            raise RateLimited(f"Rate limit reached for key '{principal.name}' on requests per min (RPM): "
                              f"Limit {limits.rpm}. Please try again in {_duration(wait)}.", type="requests",
                              retry_after=wait, headers=headers)
        if state.tokens is not None and state.tokens.level < min(estimated_tokens, state.tokens.capacity):
            wait = state.tokens.wait_for(estimated_tokens)
            raise RateLimited(f"Rate limit reached for key '{principal.name}' on tokens per min (TPM): "
                              f"Limit {limits.tpm}, Requested {estimated_tokens}. Please try again in "
                              f"{_duration(wait)}.", type="tokens", retry_after=wait, headers=headers)
        if state.requests is not None:
            state.requests.level -= 1
        if state.tokens is not None:
            state.tokens.level -= estimated_tokens
        state.in_flight += 1
        return Admission(state, estimated_tokens, _headers(state))

    def _state(self, principal: Principal, now: float) -> _KeyState:
        limits = principal.limits
        state = self._states.get(principal.name)
        if state is None or _capacity(state.requests) != limits.rpm or _capacity(state.tokens) != limits.tpm:
            # New key, or its limits changed: start from a full allowance, keep the in-flight count.
            state = _KeyState(_bucket(limits.rpm, now), _bucket(limits.tpm, now),
                              state.in_flight if state else 0)
            self._states[principal.name] = state
        return state


def _bucket(capacity: int | None, now: float) -> _Bucket | None:
    return None if capacity is None else _Bucket(float(capacity), float(capacity), now)


def _capacity(bucket: _Bucket | None) -> int | None:
    return None if bucket is None else int(bucket.capacity)


def _headers(state: _KeyState) -> dict[str, str]:
    headers = {}
    for name, bucket in (("requests", state.requests), ("tokens", state.tokens)):
        if bucket is not None:
            headers[f"x-ratelimit-limit-{name}"] = str(int(bucket.capacity))
            headers[f"x-ratelimit-remaining-{name}"] = str(max(0, math.floor(bucket.level)))
            headers[f"x-ratelimit-reset-{name}"] = _duration(bucket.reset_in())
    return headers


def _duration(seconds: float) -> str:
    """OpenAI's reset format: 20ms, 1.5s, 6m0s."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:.0f}s"
