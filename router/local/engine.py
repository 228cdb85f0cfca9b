"""Tokenizer and ONNX Runtime session for one local model; no torch here.

Split by cost, like infinity's model interface: `tokenize` (cheap, any
thread) gives ids and real token counts; `infer` (expensive, the batcher's
own thread) turns a batch of ids into pooled float32 vectors.

A batch is padded to its longest input, so 32 single-sentence requests of
12 to 45 tokens waste a third of the work on padding. `runs` (and `infer`)
therefore cut each batch, sorted by length, into the runs that cost least:
padded tokens plus a fixed cost per run, measured once at load (17-21
tokens' worth on this 2-core CPU; on a GPU it should be far more, keeping
batches whole).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from router.errors import InvalidRequest
from router.local.model_files import ModelFiles

CHARS_PER_TOKEN = 16   # a head of max_tokens * this characters nearly always fills the model
MAX_CHARS_PER_TOKEN = 1024   # ...and one this long always is the part worth reading


@dataclass(frozen=True)
class Tokenized:
    ids: list[np.ndarray]   # one int64 array per input, special tokens included
    counts: list[int]       # tokens per input, as processed (after truncation)


class Engine:
    def __init__(self, files: ModelFiles, graph: Path, *, max_tokens: int | None = None,
                 truncate: bool = True, threads: int = 0) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.files = files
        self.max_tokens = min(max_tokens or files.max_tokens, files.max_tokens)
        self.truncate = truncate
        self.dimensions = files.dimensions
        tokenizer = Tokenizer.from_file(str(files.tokenizer_path))
        # The packaged tokenizer pads everything to 128; pad per batch instead, cut at our max.
        tokenizer.no_padding()
        tokenizer.enable_truncation(self.max_tokens)
        self._tokenizer = tokenizer
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                     if p in ort.get_available_providers()]
        self._session = ort.InferenceSession(str(graph), options, providers=providers)
        self._input_names = {i.name for i in self._session.get_inputs()}
        self.run_cost = self._measure_run_cost()

    def tokenize(self, texts: list[str], truncate: bool = True) -> Tokenized:
        """Token ids, cut at `max_tokens`; with truncation off (the model's or this call's), an
        input over it is a 400 instead."""
        encodings = self._tokenizer.encode_batch([self._head(t) for t in texts])
        if not (self.truncate and truncate):
            for i, enc in enumerate(encodings):
                if enc.overflowing:
                    raise InvalidRequest(
                        f"input[{i}] is longer than this model's {self.max_tokens} tokens "
                        "and truncation is off", param="input", code="context_length_exceeded")
        ids = [np.asarray(enc.ids, dtype=np.int64) for enc in encodings]
        return Tokenized(ids, [len(i) for i in ids])

    def _head(self, text: str) -> str:
        """The part of `text` that can reach `max_tokens`: the tokenizer reads a whole text before it
        truncates (a 10 MB input cost 8 s and 1.7 GB), so a long one is cut first. A token is rarely
        over CHARS_PER_TOKEN characters; where the head still falls short of `max_tokens` (long runs
        of spaces, say), it grows fourfold and is tokenised again, up to MAX_CHARS_PER_TOKEN per token:
        text sparser than that is cut there."""
        budget = self.max_tokens * CHARS_PER_TOKEN
        while len(text) > budget:
            head = text[:budget]
            if budget >= self.max_tokens * MAX_CHARS_PER_TOKEN or self._tokenizer.encode(head).overflowing:
                return head
            budget *= 4
        return text

    def infer(self, batch: list[np.ndarray]) -> np.ndarray:
        """Pooled vectors for a batch of token id arrays, in their order."""
        out = np.empty((len(batch), self.dimensions), dtype=np.float32)
        for rows, vectors in self.runs(batch):
            out[rows] = vectors
        return out

    def runs(self, batch: list[np.ndarray]) -> Iterator[tuple[list[int], np.ndarray]]:
        """The batch's vectors run by run, each with its rows in the batch, shortest inputs first."""
        order = sorted(range(len(batch)), key=lambda i: len(batch[i]))
        for run in cheapest_runs([len(batch[i]) for i in order], self.run_cost):
            rows = order[run]
            yield rows, self._run([batch[i] for i in rows])

    def _run(self, batch: list[np.ndarray]) -> np.ndarray:
        """One ONNX Runtime run, padded to the longest input."""
        width = max(len(ids) for ids in batch)
        input_ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        (vectors,) = self._session.run(None, feeds)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _measure_run_cost(self) -> float:
        """What one run costs beyond its tokens, in tokens: time(1 x 8) against time(8 x 64)."""
        small, large = [np.full(8, 1000, np.int64)], [np.full(64, 1000, np.int64)] * 8
        self._run(large)  # the first run allocates; not measured
        timings = []
        for batch in (small, large):
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                self._run(batch)
                best = min(best, time.perf_counter() - started)
            timings.append(best)
        per_token = max(timings[1] - timings[0], 1e-9) / (8 * 64 - 8)
        return min(max(timings[0] / per_token - 8, 1.0), 1e6)


def cheapest_runs(lengths: list[int], run_cost: float) -> list[slice]:
    """Cut ascending `lengths` into runs that minimise padded tokens + `run_cost` per run.

    Dynamic programming over the distinct lengths (at most the model's max
    tokens, usually a few dozen), so it costs microseconds per batch.
    """
    ends = [i + 1 for i in range(len(lengths)) if i + 1 == len(lengths) or lengths[i + 1] != lengths[i]]
    best, cut = [0.0] * (len(ends) + 1), [0] * (len(ends) + 1)
    for j, end in enumerate(ends, 1):
        best[j] = float("inf")
        for i in range(j):  # a run from after ends[i-1] through `end`, padded to lengths[end - 1]
            start = ends[i - 1] if i else 0
            cost = best[i] + run_cost + (end - start) * lengths[end - 1]
            if cost < best[j]:
                best[j], cut[j] = cost, i
    runs, j = [], len(ends)
    while j:
        runs.append(slice(ends[cut[j] - 1] if cut[j] else 0, ends[j - 1]))
        j = cut[j]
    return runs[::-1]
