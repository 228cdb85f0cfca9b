"""The Redis limiter backend: one atomic script checks and takes all of a
request's limits, so any number of replicas share them exactly.

Every key of one API key carries the same hash tag (`{name}`), so a script
touches one slot and works on Redis Cluster. Time is Redis's own (`TIME`),
so replicas with skewed clocks agree. While Redis is unreachable the limiter
follows `on_redis_error` (allow or deny); see `router.redis_link` for how an
outage is logged and recovered from.
"""

from __future__ import annotations

import hashlib
import re
import time

from router.errors import Overloaded
from router.limits.rules import UNCHECKED, Rule, Verdict
from router.redis_link import ERRORS, RedisLink

# KEYS[i]: state of rule i. ARGV: tokens, lease, lease ttl (s), seconds to midnight UTC, then kind, limit per rule.
# Checks every rule, then takes from all of them only if all pass. Mirrors memory.py.
ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tokens, lease, ttl, midnight = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local out, levels = {0, 0}, {}
for i, key in ipairs(KEYS) do
  local kind, limit = ARGV[3 + 2 * i], tonumber(ARGV[4 + 2 * i])
  local wait, remaining, reset
  if kind == 'rpm' or kind == 'tpm' then
    local amount = 1
    if kind == 'tpm' then amount = math.min(tokens, limit) end
    local s = redis.call('HMGET', key, 'limit', 'level', 'stamp')
    local level = limit
    if tonumber(s[1]) == limit then
      level = math.min(limit, tonumber(s[2]) + math.max(0, now - tonumber(s[3])) * limit / 60)
    end
    if level < amount then wait = (amount - level) * 60 / limit end
    levels[i] = level - amount
    remaining, reset = level - amount, (limit - (level - amount)) * 60 / limit
  elseif kind == 'tokens_per_day' then
    local used = tonumber(redis.call('GET', key) or '0')
    if used + tokens > limit then wait = midnight end
    remaining, reset = limit - used - tokens, midnight
  else
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    local busy = redis.call('ZCARD', key)
    if busy >= limit then wait = 1 end
    remaining, reset = limit - busy - 1, 0
  end
  if wait and out[1] == 0 then out[1], out[2] = i, math.ceil(wait * 1000) end
  out[#out + 1] = math.floor(remaining * 1000)
  out[#out + 1] = math.ceil(reset * 1000)
end
if out[1] ~= 0 then return out end
for i, key in ipairs(KEYS) do
  local kind, limit = ARGV[3 + 2 * i], ARGV[4 + 2 * i]
  if kind == 'rpm' or kind == 'tpm' then
    redis.call('HSET', key, 'limit', limit, 'level', tostring(levels[i]), 'stamp', tostring(now))
    redis.call('EXPIRE', key, 120)
  elseif kind == 'tokens_per_day' then
    redis.call('INCRBY', key, tokens)
    redis.call('EXPIRE', key, math.ceil(midnight) + 3600)
  else
    redis.call('ZADD', key, now + ttl, lease)
    redis.call('EXPIRE', key, math.ceil(ttl))
  end
end
return out
"""

# KEYS as for ACQUIRE. ARGV: lease, extra tokens (real minus estimated), then kind, limit per rule.
RELEASE = """
local lease, extra = ARGV[1], tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  local kind, limit = ARGV[1 + 2 * i], tonumber(ARGV[2 + 2 * i])
  if kind == 'concurrency' then
    redis.call('ZREM', key, lease)
  elseif extra ~= 0 and kind == 'tpm' then
    local s = redis.call('HMGET', key, 'limit', 'level')
    if tonumber(s[1]) == limit then
      redis.call('HSET', key, 'level', tostring(math.min(limit, tonumber(s[2]) - extra)))
    end
  elseif extra ~= 0 and kind == 'tokens_per_day' and redis.call('EXISTS', key) == 1 then
    redis.call('INCRBY', key, extra)
  end
end
return 0
"""

_PLAIN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class RedisBackend:
    def __init__(self, link: RedisLink, *, on_error: str, lease_s: float, namespace: str = "limits") -> None:
        self._link, self._on_error, self._lease_s = link, on_error, lease_s
        self._namespace = namespace
        self._acquire = link.client.register_script(ACQUIRE)
        self._release = link.client.register_script(RELEASE)
        self.unchecked = 0  # requests decided by on_redis_error, for metrics

    def keys(self, key: str, rules: tuple[Rule, ...]) -> list[str]:
        tag = key if _PLAIN.fullmatch(key) else hashlib.blake2b(key.encode(), digest_size=8).hexdigest()
        day = int(time.time() // 86400)
        keys = []
        for rule in rules:
            scope = f":m:{hashlib.blake2b(rule.scope.encode(), digest_size=6).hexdigest()}" if rule.scope else ""
            suffix = f":{day}" if rule.kind == "tokens_per_day" else ""
            keys.append(f"{self._link.prefix}{self._namespace}:{{{tag}}}{scope}:{rule.kind}{suffix}")
        return keys

    async def acquire(self, key: str, rules: tuple[Rule, ...], tokens: int, lease: str) -> Verdict:
        if not self._link.usable:
            return self._unchecked()
        args: list = [tokens, lease, self._lease_s, 86400 - time.time() % 86400]
        for rule in rules:
            args += [rule.kind, rule.limit]
        try:
            out = await self._acquire(keys=self.keys(key, rules), args=args)
        except ERRORS as exc:
            self._link.failed(exc, "limits")
            return self._unchecked()
        self._link.succeeded()
        refused = int(out[0]) - 1 if out[0] else None
        return Verdict(refused, int(out[1]) / 1000, tuple(int(v) / 1000 for v in out[2::2]),
                       tuple(int(v) / 1000 for v in out[3::2]))

    async def release(self, key: str, rules: tuple[Rule, ...], lease: str, extra_tokens: int) -> None:
        if not self._link.usable or not any(
                r.kind == "concurrency" or (extra_tokens and r.counts_tokens) for r in rules):
            return
        args: list = [lease, extra_tokens]
        for rule in rules:
            args += [rule.kind, rule.limit]
        try:
            await self._release(keys=self.keys(key, rules), args=args)
        except ERRORS as exc:  # the lease expires by itself; the token difference is lost
            self._link.failed(exc, "limits")

    def _unchecked(self) -> Verdict:
        self.unchecked += 1
        if self._on_error == "deny":
            raise Overloaded("The rate limiter's store is unreachable and this router refuses requests until "
                             "it is back (limits.on_redis_error: deny).", code="limiter_unavailable",
                             retry_after=1)
        return UNCHECKED
