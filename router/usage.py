"""Who used what: per key, public model and deployment, in hourly rows.

`record` runs after each authenticated embeddings request and only adds to a dict in
this process (no await on the request path). With usage in Redis, a background task
moves those counts into one Redis hash per hour every `usage.flush_s`, so every
replica's counts add up and a restart keeps what was flushed; a crash loses at most
the last `flush_s` of this process's counts. In memory, the dict is the store.

What the counts mean: `requests` and `inputs` count every authenticated request,
failed ones too (which `errors_4xx` / `errors_5xx` count); `tokens` are the tokens
computed for it (upstream or local), `cache_hits` the inputs it got without computing
them (from the cache or another request's call) and `cache_saved_tokens` their tokens;
`cost_usd` is the computed tokens at the serving deployment's price (0 where none is set).
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from router.errors import InvalidRequest, Overloaded
from router.outcome import Outcome
from router.redis_link import ERRORS, RedisLink

COUNTS = ("requests", "inputs", "tokens", "cache_hits", "cache_saved_tokens", "errors_4xx", "errors_5xx",
          "cost_usd")
GROUPS = ("key", "model", "deployment")
_HOUR = 3600
_COST = COUNTS.index("cost_usd")

Row = tuple[int, str, str, str]  # (hour's start, key, model, deployment)


def hour_iso(hour: int) -> str:
    return datetime.fromtimestamp(hour, UTC).strftime("%Y-%m-%dT%H:00:00Z")


def parse_time(value: str | None, default: float, param: str) -> float:
    """An ISO 8601 date or time (UTC unless it says otherwise), as epoch seconds."""
    if value is None or value == "":
        return default
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise InvalidRequest(f"{param!r} must be an ISO 8601 date or time, like 2026-11-30 or "
                             f"2026-11-30T14:00:00Z; got {value[:40]!r}", param=param) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_group_by(value: str | None) -> tuple[str, ...]:
    if value is None:
        return ("key", "model")
    groups = tuple(g.strip() for g in value.split(",") if g.strip())
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise InvalidRequest(f"'group_by' takes {', '.join(GROUPS)} (comma-separated); got {unknown[0][:40]!r}",
                             param="group_by")
    return tuple(dict.fromkeys(groups))


class Usage:
    def __init__(self, redis: RedisLink | None, *, retention_days: int, flush_s: float, log: Any,
                 clock: Callable[[], float] = time.time) -> None:
        self.redis, self._log, self._clock = redis, log, clock
        self.retention_s = retention_days * 86400
        self.flush_s = flush_s
        self._counts: dict[Row, list[float]] = {}   # in Redis mode: what is not flushed yet
        self._flushing = asyncio.Lock()

    @property
    def backend(self) -> str:
        return "memory" if self.redis is None else "redis"

    def record(self, outcome: Outcome) -> None:
        """Count one request; only authenticated ones are anybody's usage."""
        if not outcome.key:
            return
        deployment = outcome.deployment or ("cache" if outcome.status == 200 else "")
        row = (int(self._clock()) // _HOUR * _HOUR, outcome.key, outcome.route, deployment)
        counts = self._counts.get(row)
        if counts is None:
            counts = self._counts[row] = [0.0] * len(COUNTS)
        counts[0] += 1
        counts[1] += outcome.inputs
        if outcome.status == 200:
            counts[2] += outcome.tokens - outcome.saved_tokens
            counts[3] += outcome.cache_hits + outcome.shared_inputs
            counts[4] += outcome.saved_tokens
        elif outcome.status < 500:
            counts[5] += 1
        else:
            counts[6] += 1
        counts[_COST] += outcome.cost_usd

    async def run(self) -> None:
        """Flush (Redis) or prune (memory) every `flush_s`, until cancelled."""
        while True:
            await asyncio.sleep(self.flush_s)
            try:
                await self.flush()
            except Exception:  # never let the loop die: the next round tries again
                self._log.exception("usage flush failed; retrying")

    async def flush(self) -> None:
        """Move this process's counts to Redis; on failure they stay here for the next flush."""
        if self.redis is None:
            oldest = self._clock() - self.retention_s - _HOUR
            for row in [r for r in self._counts if r[0] < oldest]:
                del self._counts[row]
            return
        async with self._flushing:
            taken, self._counts = self._counts, {}
            if not taken:
                return
            try:
                await self._write(taken)
            except ERRORS as exc:
                self.redis.failed(exc, "usage")
                for row, counts in taken.items():  # back, merged with what came in meanwhile
                    mine = self._counts.setdefault(row, [0.0] * len(COUNTS))
                    for i, value in enumerate(counts):
                        mine[i] += value
            else:
                self.redis.succeeded()

    async def _write(self, taken: dict[Row, list[float]]) -> None:
        assert self.redis is not None
        pipe = self.redis.client.pipeline(transaction=False)
        for hour in {row[0] for row in taken}:
            pipe.expire(self._hash(hour), self.retention_s + _HOUR)
        for (hour, *names), counts in taken.items():
            for i, (name, value) in enumerate(zip(COUNTS, counts)):
                if not value:
                    continue
                field = orjson.dumps([*names, name])
                if i == _COST:
                    pipe.hincrbyfloat(self._hash(hour), field, value)
                else:
                    pipe.hincrby(self._hash(hour), field, int(value))
        # An expire sent before its hash exists does nothing: repeat them after the writes.
        for hour in {row[0] for row in taken}:
            pipe.expire(self._hash(hour), self.retention_s + _HOUR)
        await pipe.execute()

    def _hash(self, hour: int) -> str:
        assert self.redis is not None
        return f"{self.redis.prefix}usage:{hour}"

    async def rows(self, start: float, end: float, group_by: Sequence[str]) -> list[dict]:
        """Hourly rows from `start` to `end` (an hour is in if it began before `end`), summed over
        what `group_by` leaves out; hours, then groups, in order."""
        now = self._clock()  # no row is older than the retention or newer than this hour
        first = int(max(start, now - self.retention_s)) // _HOUR * _HOUR
        hours = range(first, int(min(end, now + _HOUR)), _HOUR)
        if self.redis is None:
            wanted = set(hours)
            found: Iterable[tuple[Row, Sequence[float]]] = [(r, c) for r, c in self._counts.items() if r[0] in wanted]
        else:
            await self.flush()  # this process's own counts are in what it answers
            found = await self._read(hours)
        return _grouped(found, group_by)

    async def _read(self, hours: range) -> list[tuple[Row, list[float]]]:
        assert self.redis is not None
        pipe = self.redis.client.pipeline(transaction=False)
        for hour in hours:
            pipe.hgetall(self._hash(hour))
        try:
            answers = await pipe.execute()
        except ERRORS as exc:
            self.redis.failed(exc, "usage")
            raise Overloaded("usage is kept in Redis, which is unreachable; try again shortly",
                             code="usage_unavailable") from None
        found: dict[Row, list[float]] = {}
        for hour, fields in zip(hours, answers):
            for raw, value in fields.items():
                key, model, deployment, name = orjson.loads(raw)
                counts = found.setdefault((hour, key, model, deployment), [0.0] * len(COUNTS))
                counts[COUNTS.index(name)] += float(value)
        return list(found.items())

    async def aclose(self) -> None:
        if self.redis is not None:
            await self.flush()


def _grouped(found: Iterable[tuple[Row, Sequence[float]]], group_by: Sequence[str]) -> list[dict]:
    picks = [GROUPS.index(g) + 1 for g in group_by]
    sums: dict[tuple, list[float]] = {}
    for row, counts in found:
        group = (row[0], *(row[i] for i in picks))
        total = sums.setdefault(group, [0.0] * len(COUNTS))
        for i, value in enumerate(counts):
            total[i] += value
    out = []
    for group in sorted(sums):
        item: dict[str, Any] = {"hour": hour_iso(int(group[0]))}
        item.update({name: value or None for name, value in zip(group_by, group[1:])})
        item.update({name: int(value) for name, value in zip(COUNTS[:_COST], sums[group])})
        item["cost_usd"] = round(sums[group][_COST], 6)
        out.append(item)
    return out


def as_csv(rows: list[dict], group_by: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, ["hour", *group_by, *COUNTS], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
