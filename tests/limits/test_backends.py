"""Both limiter backends, one suite: they must enforce the same semantics."""

from __future__ import annotations

import asyncio

from router.limits.rules import Rule

RPM = (Rule("rpm", 6000, ""),)  # refills 100 a second, so the tests wait little


async def take(backend, rules, tokens: int = 1, key: str = "team", lease: str = "l") -> int | None:
    return (await backend.acquire(key, rules, tokens, lease)).refused


async def test_a_bucket_bursts_to_its_limit_then_refills(backend):
    rules = (Rule("rpm", 3, ""),)
    assert [await take(backend, rules) for _ in range(4)] == [None, None, None, 0]
    verdict = await backend.acquire("team", rules, 1, "l")
    assert verdict.refused == 0 and 19 < verdict.wait_s <= 20  # one request every 20 s


async def test_refill_over_time(backend):
    rules = (Rule("rpm", 120, ""),)  # two a second
    for _ in range(120):
        assert await take(backend, rules) is None
    assert await take(backend, rules) == 0
    await asyncio.sleep(0.55)
    assert await take(backend, rules) is None


async def test_one_refusal_takes_nothing_from_the_other_limits(backend):
    rules = (Rule("rpm", 10, ""), Rule("tpm", 100, ""))
    assert await take(backend, rules, tokens=90) is None
    assert await take(backend, rules, tokens=50) == 1  # tokens refuse: the request count must not drop
    verdict = await backend.acquire("team", rules, 10, "l")
    assert verdict.refused is None and int(verdict.remaining[0]) == 8  # 10 - 2 admitted


async def test_keys_and_model_scopes_are_counted_apart(backend):
    key_rule, model_rule = Rule("rpm", 1, ""), Rule("rpm", 1, "bge-*")
    assert await take(backend, (key_rule,), key="a") is None
    assert await take(backend, (key_rule,), key="b") is None
    assert await take(backend, (model_rule,), key="a") is None
    assert await take(backend, (key_rule,), key="a") == 0


async def test_tokens_are_settled_with_the_real_count(backend):
    rules = (Rule("tpm", 100, ""),)
    assert await take(backend, rules, tokens=10) is None
    await backend.release("team", rules, "l", extra_tokens=80)  # the estimate was 80 short
    verdict = await backend.acquire("team", rules, 20, "l")
    assert verdict.refused == 0 and 5 < verdict.wait_s <= 6.1  # 10 missing, at 100 a minute


async def test_an_estimate_over_the_limit_passes_on_a_full_bucket(backend):
    rules = (Rule("tpm", 100, ""),)
    assert await take(backend, rules, tokens=500) is None
    assert await take(backend, rules, tokens=1) == 0


async def test_daily_budget(backend):
    rules = (Rule("tokens_per_day", 100, ""),)
    assert await take(backend, rules, tokens=60) is None
    verdict = await backend.acquire("team", rules, 50, "l")
    assert verdict.refused == 0 and 0 < verdict.wait_s <= 86400  # until midnight UTC
    await backend.release("team", rules, "l", extra_tokens=-20)  # 20 fewer than estimated
    assert await take(backend, rules, tokens=60) is None
    assert await take(backend, rules, tokens=1) == 0


async def test_concurrency_slots_come_back_on_release(backend):
    rules = (Rule("concurrency", 2, ""),)
    assert await take(backend, rules, lease="a") is None
    assert await take(backend, rules, lease="b") is None
    assert await take(backend, rules, lease="c") == 0
    await backend.release("team", rules, "a", 0)
    assert await take(backend, rules, lease="d") is None


async def test_a_changed_limit_starts_a_full_allowance(backend):
    assert await take(backend, (Rule("rpm", 1, ""),)) is None
    assert await take(backend, (Rule("rpm", 1, ""),)) == 0
    assert await take(backend, (Rule("rpm", 5, ""),)) is None


async def test_headers_count_down(backend):
    rules = (Rule("rpm", 5, ""), Rule("tpm", 1000, ""))
    first = (await backend.acquire("team", rules, 100, "l")).headers(rules)
    second = (await backend.acquire("team", rules, 100, "l")).headers(rules)
    assert (first["x-ratelimit-remaining-requests"], second["x-ratelimit-remaining-requests"]) == ("4", "3")
    assert (first["x-ratelimit-remaining-tokens"], second["x-ratelimit-remaining-tokens"]) == ("900", "800")
    assert first["x-ratelimit-limit-tokens"] == "1000"
