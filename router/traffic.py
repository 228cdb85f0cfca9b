"""The last hour of traffic, second by second, for the console's charts: kept in
memory by each process so the console needs no Prometheus.

`record` is a few additions into the current second's slot (a ring of
`seconds` slots, reused as time goes round). Latency percentiles come from at
most `_SAMPLES` latencies per second (a reservoir sample above that), worked out
when a second is read.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from router.outcome import Outcome

_SAMPLES = 256


class _Second:
    __slots__ = ("at", "cache_hits", "errors", "inputs", "latencies", "requests")

    def __init__(self, at: int) -> None:
        self.at = at
        self.requests = self.inputs = self.cache_hits = 0
        self.errors: dict[str, int] = {}
        self.latencies: list[float] = []


class Traffic:
    def __init__(self, seconds: int = 3600, clock: Callable[[], float] = time.time, seed: int | None = None) -> None:
        self.seconds = seconds
        self._clock = clock
        self._ring: list[_Second | None] = [None] * seconds
        self._rng = random.Random(seed)

    def record(self, outcome: Outcome) -> None:
        now = int(self._clock())
        index = now % self.seconds
        slot = self._ring[index]
        if slot is None or slot.at != now:
            slot = self._ring[index] = _Second(now)
        slot.requests += 1
        slot.inputs += outcome.inputs
        if outcome.status == 200:
            slot.cache_hits += outcome.cache_hits + outcome.shared_inputs
        else:
            code = outcome.error or str(outcome.status)
            slot.errors[code] = slot.errors.get(code, 0) + 1
        if len(slot.latencies) < _SAMPLES:
            slot.latencies.append(outcome.total_ms)
        else:  # reservoir: every request of the second is as likely to be kept
            pick = self._rng.randrange(slot.requests)
            if pick < _SAMPLES:
                slot.latencies[pick] = outcome.total_ms

    def since(self, after: int | None = None) -> dict:
        """The whole seconds after `after` (epoch seconds; default: the last `seconds`), oldest first,
        up to the last finished second; seconds without requests are left out."""
        now = int(self._clock())
        start = max(now - self.seconds, after if after is not None else 0)
        out = []
        for at in range(start + 1, now):
            slot = self._ring[at % self.seconds]
            if slot is None or slot.at != at:
                continue
            ordered = sorted(slot.latencies)
            out.append({"t": at, "requests": slot.requests, "inputs": slot.inputs, "cache_hits": slot.cache_hits,
                        "errors": dict(slot.errors), "p50_ms": _quantile(ordered, 0.5),
                        "p99_ms": _quantile(ordered, 0.99)})
        return {"now": now - 1, "window_s": self.seconds, "seconds": out}


def _quantile(ordered: list[float], q: float) -> float:
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)
