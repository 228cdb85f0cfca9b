"""Output types computed from float vectors, for any model.

`ubinary`: one bit per dimension, 1 where the value is > 0, packed eight to a
byte, most significant bit first, as uint8; `binary`: the same bytes as int8
(ubinary - 128). That is what Cohere, Voyage and sentence-transformers'
`quantize_embeddings` return, so vectors quantised here compare with theirs.
The cache keeps floats; these are computed at encode time. `int8` and `uint8` depend on
an upstream's own calibration: they come from upstreams that quantise (`Options.dtype`),
carried as float32 integers and cached apart from the floats.
"""

from __future__ import annotations

import numpy as np

COMPUTED = ("float", "binary", "ubinary")   # from any model's floats
UPSTREAM_ONLY = ("int8", "uint8")           # need an upstream that quantises with its own calibration


def ubinary(vectors: np.ndarray) -> np.ndarray:
    return np.packbits(vectors > 0, axis=1, bitorder="big")


def binary(vectors: np.ndarray) -> np.ndarray:
    return (ubinary(vectors).astype(np.int16) - 128).astype(np.int8)


def as_output(vectors: np.ndarray, output_type: str) -> np.ndarray:
    """`vectors` (float32, n x d) in `output_type`: float32, or n x ceil(d / 8) bytes; for int8 and
    uint8 the vectors already hold the upstream's integers (exact in float32), only retyped here."""
    if output_type in UPSTREAM_ONLY:
        return vectors.astype(output_type)
    if output_type == "ubinary":
        return ubinary(vectors)
    if output_type == "binary":
        return binary(vectors)
    return vectors
