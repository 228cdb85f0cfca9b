"""Selection strategies, table-tested for what they pick and how often."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import pytest

from router.breaker import CooldownPolicy
from router.config import Deployment
from router.deployments import DeploymentState
from router.strategies import STRATEGIES


@dataclass
class Candidate:
    state: DeploymentState


def candidates(*specs: dict) -> list[Candidate]:
    out = []
    for i, spec in enumerate(specs):
        state = DeploymentState("m", Deployment(f"p{i}", "m", weight=spec.get("weight", 1.0)), CooldownPolicy())
        state.in_flight = spec.get("in_flight", 0)
        state.latency_s = spec.get("latency_s")
        out.append(Candidate(state))
    return out


def shares(strategy: str, pool: list[Candidate], n: int = 20_000) -> list[float]:
    rng = random.Random(1234)
    counts = Counter(STRATEGIES[strategy](pool, rng).state.deployment.provider for _ in range(n))
    return [counts[f"p{i}"] / n for i in range(len(pool))]


TABLE = [
    # (strategy, candidates, expected share of picks per candidate)
    ("priority", [{}, {}, {}], [1.0, 0.0, 0.0]),
    ("weighted", [{"weight": 3}, {"weight": 1}], [0.75, 0.25]),
    ("weighted", [{"weight": 1}, {"weight": 1}, {"weight": 2}], [0.25, 0.25, 0.5]),
    ("least-busy", [{"in_flight": 3}, {"in_flight": 1}, {"in_flight": 2}], [0.0, 1.0, 0.0]),
    ("least-busy", [{"in_flight": 0}, {"in_flight": 0}, {"in_flight": 5}], [0.5, 0.5, 0.0]),
    ("latency", [{"latency_s": 0.2}, {"latency_s": 0.05}, {"latency_s": 0.1}], [0.0, 1.0, 0.0]),
    ("latency", [{"latency_s": 0.01}, {}, {}], [0.0, 0.5, 0.5]),  # unmeasured ones are measured first
]


@pytest.mark.parametrize(("strategy", "specs", "expected"), TABLE)
def test_distribution(strategy, specs, expected):
    assert shares(strategy, candidates(*specs)) == pytest.approx(expected, abs=0.015)


def test_a_lone_candidate_is_always_picked():
    for strategy in STRATEGIES:
        assert shares(strategy, candidates({"weight": 0.1, "in_flight": 9, "latency_s": 9.0}), 50) == [1.0]
