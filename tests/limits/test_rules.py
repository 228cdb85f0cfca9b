"""Which limits a request is checked against, and how a check reads to a client."""

from __future__ import annotations

from router.config import KeyLimits
from router.limits.rules import Rule, Verdict, duration, rules_for


def test_key_limits_and_the_first_matching_model_pattern():
    model_limits = (("bge-*", KeyLimits(rpm=5)), ("*", KeyLimits(tpm=7)))
    rules = rules_for(KeyLimits(rpm=60, tokens_per_day=1000, concurrency=2), model_limits, "bge-base")
    assert rules == (Rule("rpm", 60, ""), Rule("tokens_per_day", 1000, ""), Rule("concurrency", 2, ""),
                     Rule("rpm", 5, "bge-*"))
    assert rules_for(KeyLimits(), model_limits, "e5") == (Rule("tpm", 7, "*"),)
    assert rules_for(KeyLimits(), (), "e5") == ()


def test_headers_report_the_tightest_per_minute_rule():
    rules = (Rule("rpm", 60, ""), Rule("rpm", 5, "bge-*"), Rule("tpm", 1000, ""))
    verdict = Verdict(None, 0, remaining=(50, 2, 900.5), reset_s=(10, 36, 6))
    assert verdict.headers(rules) == {
        "x-ratelimit-limit-requests": "5", "x-ratelimit-remaining-requests": "2",
        "x-ratelimit-reset-requests": "36s", "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "900", "x-ratelimit-reset-tokens": "6s"}


def test_refusals_read_like_openais():
    rules = (Rule("tpm", 100, ""), Rule("tokens_per_day", 5000, "bge-*"), Rule("concurrency", 3, ""))
    tpm = Verdict(0, 1.5, (0, 10, 1), (60, 3600, 0)).refusal(rules, "team", 120)
    assert (tpm.status, tpm.type, tpm.code, tpm.retry_after) == (429, "tokens", "rate_limit_exceeded", 1.5)
    assert tpm.message == ("Rate limit reached for key 'team' on tokens per min (TPM): Limit 100, Requested 120. "
                           "Please try again in 1.5s.")
    day = Verdict(1, 3600, (0, 10, 1), (60, 3600, 0)).refusal(rules, "team", 120)
    assert day.type == "tokens" and "key 'team' on models 'bge-*'" in day.message and "in 1h0m0s" in day.message
    busy = Verdict(2, 1, (0, 10, 0), (60, 3600, 0)).refusal(rules, "team", 120)
    assert busy.type == "requests" and "Limit 3" in busy.message


def test_durations_in_openais_format():
    assert [duration(s) for s in (0.02, 1.5, 59, 360, 7322)] == ["20ms", "1.5s", "59s", "6m0s", "2h2m2s"]
