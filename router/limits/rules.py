"""What a request is checked against, and what a check answers, for every backend.

A request is checked against the key's own limits and those of the first
`model_limits` pattern its model matches. Each limit is one `Rule`; a backend
answers one `Verdict` for all of them at once (atomically in Redis), and
`Verdict.headers` / `Verdict.refusal` turn it into what OpenAI sends.

Semantics, the same in every backend:
- rpm, tpm: token buckets refilled continuously over a minute; a key with
  rpm 60 bursts 60 requests, then gets one a second. A request takes 1 (rpm)
  or its estimated tokens (tpm, capped at the limit so a huge request can
  still pass on a full bucket); the real count is settled afterwards.
- tokens_per_day: a budget per UTC day; a request passes while used +
  estimated <= budget.
- concurrency: requests in flight. In Redis each holds a lease that expires
  after the request deadline, so a crashed replica's slots come back.
A changed limit starts a fresh, full allowance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fnmatch import fnmatchcase

from router.errors import RateLimited
from router.settings import KeyLimits


@dataclass(frozen=True)
class Rule:
    kind: str   # rpm | tpm | tokens_per_day | concurrency
    limit: int
    scope: str  # "" for the whole key, else the model pattern it was declared under

    @property
    def counts_tokens(self) -> bool:
        return self.kind in ("tpm", "tokens_per_day")


def rules_for(limits: KeyLimits, model_limits: tuple[tuple[str, KeyLimits], ...], model: str) -> tuple[Rule, ...]:
    scoped = [("", limits)]
    for pattern, per_model in model_limits:
        if fnmatchcase(model, pattern):
            scoped.append((pattern, per_model))
            break
    return tuple(Rule(kind, value, scope) for scope, lim in scoped
                 for kind in ("rpm", "tpm", "tokens_per_day", "concurrency")
                 if (value := getattr(lim, kind)) is not None)


@dataclass(frozen=True)
class Verdict:
    """One check of all of a request's rules: which refused (if any), and each rule's state."""

    refused: int | None            # index of the first rule that refused
    wait_s: float                  # until the refused rule would pass
    remaining: tuple[float, ...]   # per rule, after this request
    reset_s: tuple[float, ...]     # per rule, until its allowance is full again

    def headers(self, rules: tuple[Rule, ...]) -> dict[str, str]:
        """x-ratelimit-* for requests and tokens, from the per-minute rule with the least left."""
        headers: dict[str, str] = {}
        if not self.remaining:  # not checked: Redis was unreachable and on_redis_error allows
            return headers
        for kind, name in (("rpm", "requests"), ("tpm", "tokens")):
            tightest = min((i for i, r in enumerate(rules) if r.kind == kind),
                           key=lambda i: self.remaining[i], default=None)
            if tightest is not None:
                headers[f"x-ratelimit-limit-{name}"] = str(rules[tightest].limit)
                headers[f"x-ratelimit-remaining-{name}"] = str(max(0, math.floor(self.remaining[tightest])))
                headers[f"x-ratelimit-reset-{name}"] = duration(self.reset_s[tightest])
        return headers

    def refusal(self, rules: tuple[Rule, ...], key: str, tokens: int) -> RateLimited:
        assert self.refused is not None
        rule = rules[self.refused]
        who = f"key '{key}'" + (f" on models '{rule.scope}'" if rule.scope else "")
        wait = duration(self.wait_s)
        message = {
            "rpm": f"Rate limit reached for {who} on requests per min (RPM): Limit {rule.limit}. "
                   f"Please try again in {wait}.",
            "tpm": f"Rate limit reached for {who} on tokens per min (TPM): Limit {rule.limit}, "
                   f"Requested {tokens}. Please try again in {wait}.",
            "tokens_per_day": f"Daily token budget reached for {who}: Limit {rule.limit}, Requested {tokens}. "
                              f"It resets at 00:00 UTC, in {wait}.",
            "concurrency": f"Too many concurrent requests for {who}: Limit {rule.limit}. "
                           "Retry when one finishes.",
        }[rule.kind]
        kind = "tokens" if rule.counts_tokens else "requests"
        return RateLimited(message, type=kind, retry_after=self.wait_s, headers=self.headers(rules))


UNCHECKED = Verdict(None, 0.0, (), ())


def duration(seconds: float) -> str:
    """OpenAI's reset format: 20ms, 1.5s, 6m0s."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{int(minutes)}m{rest:.0f}s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)}h{int(minutes)}m{rest:.0f}s"
