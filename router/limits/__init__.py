"""Per-key limits: requests/min, tokens/min, tokens/day, concurrent requests.

    limiter = Limiter(backend)
    async with limiter.admit(principal, model, inputs) as admission:
        ...                       # 429 RateLimited raised on entry when over a limit
        admission.actual = 1234   # the real token count, settled on exit

The rules and their answers (`rules.py`) are the same for every backend;
a backend only keeps the state: `memory.py` for one process, `redis.py`
for replicas sharing one Redis.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Protocol

from router.auth import Principal
from router.limits.rules import Rule, Verdict, rules_for


class Backend(Protocol):
    async def acquire(self, key: str, rules: tuple[Rule, ...], tokens: int, lease: str) -> Verdict: ...
    async def release(self, key: str, rules: tuple[Rule, ...], lease: str, extra_tokens: int) -> None: ...


class Admission:
    """One request's hold on its limits: taken on entry, settled on exit."""

    def __init__(self, backend: Backend, principal: Principal, rules: tuple[Rule, ...], estimate: int) -> None:
        self._backend, self._principal, self._rules = backend, principal, rules
        self.estimated = estimate
        self.actual: int | None = None  # the real token count, once known
        self.headers: dict[str, str] = {}
        self._lease = uuid.uuid4().hex if rules else ""

    async def __aenter__(self) -> Admission:
        if not self._rules:
            return self
        verdict = await self._backend.acquire(self._principal.name, self._rules, self.estimated, self._lease)
        if verdict.refused is not None:
            raise verdict.refusal(self._rules, self._principal.name, self.estimated)
        self.headers = verdict.headers(self._rules)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._rules:
            extra = self.actual - self.estimated if self.actual is not None else 0
            await self._backend.release(self._principal.name, self._rules, self._lease, extra)


class Limiter:
    def __init__(self, backend: Backend, estimate: Callable[[Sequence], list[int]]) -> None:
        self.backend = backend
        self._estimate = estimate

    def admit(self, principal: Principal, model: str, inputs: Sequence) -> Admission:
        rules = rules_for(principal.limits, principal.model_limits, model)
        # Estimating costs a pass over the inputs: only token limits need it.
        estimate = sum(self._estimate(inputs)) if any(r.counts_tokens for r in rules) else 0
        return Admission(self.backend, principal, rules, estimate)
