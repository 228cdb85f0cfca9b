"""How a model picks one of its deployments, by the config's `strategy:`.

Each strategy gets the deployments that can take a call now, in config
order (never empty), and picks one:

    priority     the first: later ones serve only when earlier ones cannot
    weighted     at random, in proportion to `weight`
    least-busy   the fewest calls in flight (ties at random)
    latency      the lowest recent latency (EWMA); unmeasured ones first, so
                 every deployment gets measured (ties at random)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from router.deployments import DeploymentState


class Candidate(Protocol):
    @property
    def state(self) -> DeploymentState: ...


C = TypeVar("C", bound=Candidate)
Strategy = Callable[[Sequence[C], random.Random], C]


def priority(candidates: Sequence[C], rng: random.Random) -> C:
    return candidates[0]


def weighted(candidates: Sequence[C], rng: random.Random) -> C:
    if len(candidates) == 1:
        return candidates[0]
    return rng.choices(candidates, weights=[c.state.deployment.weight for c in candidates])[0]


def least_busy(candidates: Sequence[C], rng: random.Random) -> C:
    fewest = min(c.state.in_flight for c in candidates)
    return rng.choice([c for c in candidates if c.state.in_flight == fewest])


def lowest_latency(candidates: Sequence[C], rng: random.Random) -> C:
    unmeasured = [c for c in candidates if c.state.latency_s is None]
    if unmeasured:
        return rng.choice(unmeasured)
    best = min(c.state.latency_s for c in candidates)  # type: ignore[type-var]
    return rng.choice([c for c in candidates if c.state.latency_s == best])


STRATEGIES: dict[str, Strategy] = {
    "priority": priority,
    "weighted": weighted,
    "least-busy": least_busy,
    "latency": lowest_latency,
}
