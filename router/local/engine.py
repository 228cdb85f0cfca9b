"""Tokenizer and ONNX Runtime session for one local model; no torch here.

Split by cost, like infinity's model interface: `tokenize` (cheap, any
thread) gives ids and real token counts; `infer` (expensive, the batcher's
own thread) turns a batch of ids into pooled float32 vectors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from router.errors import InvalidRequest
from router.local.model_files import ModelFiles


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

    def tokenize(self, texts: list[str]) -> Tokenized:
        encodings = self._tokenizer.encode_batch(texts)
        if not self.truncate:
            for i, enc in enumerate(encodings):
                if enc.overflowing:
                    raise InvalidRequest(
                        f"input[{i}] is longer than this model's {self.max_tokens} tokens "
                        "(truncate is off for this model)", param="input", code="context_length_exceeded")
        ids = [np.asarray(enc.ids, dtype=np.int64) for enc in encodings]
        return Tokenized(ids, [len(i) for i in ids])

    def infer(self, batch: list[np.ndarray]) -> np.ndarray:
        """Pooled vectors for a batch of token id arrays, padded to the longest."""
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
