"""The in-process limiter backend: one replica only (`serve --workers` refuses it)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from router.limits.rules import Rule, Verdict


@dataclass
class _Bucket:
    limit: int
    level: float
    stamp: float


class MemoryBackend:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._buckets: dict[tuple, _Bucket] = {}
        self._days: dict[tuple, tuple[int, float, int]] = {}  # -> (limit, day, used)
        self._busy: dict[tuple, int] = {}

    async def acquire(self, key: str, rules: tuple[Rule, ...], tokens: int, lease: str) -> Verdict:
        now = self._clock()
        day, to_midnight = divmod(now, 86400.0)
        to_midnight = 86400.0 - to_midnight
        refused, wait, remaining, reset, levels = None, 0.0, [], [], []
        for i, rule in enumerate(rules):
            state_key = (key, rule.scope, rule.kind)
            blocked = None
            if rule.kind in ("rpm", "tpm"):
                amount = 1 if rule.kind == "rpm" else min(tokens, rule.limit)
                bucket = self._buckets.get(state_key)
                level = float(rule.limit)
                if bucket is not None and bucket.limit == rule.limit:
                    level = min(level, bucket.level + max(0.0, now - bucket.stamp) * rule.limit / 60)
                levels.append(level - amount)
                if level < amount:
                    blocked = (amount - level) * 60 / rule.limit
                remaining.append(level - amount)
                reset.append((rule.limit - (level - amount)) * 60 / rule.limit)
            elif rule.kind == "tokens_per_day":
                limit, stamp_day, used = self._days.get(state_key, (rule.limit, day, 0))
                used = used if (limit, stamp_day) == (rule.limit, day) else 0
                levels.append(used + tokens)
                if used + tokens > rule.limit:
                    blocked = to_midnight
                remaining.append(rule.limit - used - tokens)
                reset.append(to_midnight)
            else:  # concurrency
                busy = self._busy.get(state_key, 0)
                levels.append(busy + 1)
                if busy >= rule.limit:
                    blocked = 1.0
                remaining.append(rule.limit - busy - 1)
                reset.append(0.0)
            if blocked is not None and refused is None:
                refused, wait = i, blocked
        if refused is None:
            for rule, level in zip(rules, levels):
                state_key = (key, rule.scope, rule.kind)
                if rule.kind in ("rpm", "tpm"):
                    self._buckets[state_key] = _Bucket(rule.limit, level, now)
                elif rule.kind == "tokens_per_day":
                    self._days[state_key] = (rule.limit, day, int(level))
                else:
                    self._busy[state_key] = int(level)
        return Verdict(refused, wait, tuple(remaining), tuple(reset))

    async def release(self, key: str, rules: tuple[Rule, ...], lease: str, extra_tokens: int) -> None:
        for rule in rules:
            state_key = (key, rule.scope, rule.kind)
            if rule.kind == "concurrency":
                self._busy[state_key] = max(0, self._busy.get(state_key, 1) - 1)
            elif rule.kind == "tpm" and (bucket := self._buckets.get(state_key)) is not None:
                bucket.level = min(bucket.limit, bucket.level - extra_tokens)  # may go below zero: paid later
            elif rule.kind == "tokens_per_day" and (state := self._days.get(state_key)) is not None:
                self._days[state_key] = (state[0], state[1], max(0, state[2] + extra_tokens))
