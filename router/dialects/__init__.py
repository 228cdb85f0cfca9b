"""Inbound dialects: each client family's request and response shapes around the one pipeline.

A dialect is a `parse` (its body -> the router's EmbeddingRequest) and an
`encode` (the vectors -> its body), plus its routes in `router.app`. Auth,
limits, cache, routing and providers are the same for every dialect, so a
text embedded through one is a cache hit through another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from router.outcome import Trace
from router.protocol import EmbeddingRequest


@dataclass(frozen=True)
class Context:
    """What a parse may need beyond the body."""

    max_inputs: int
    default_model: str | None   # `server.default_model`, for dialects whose requests name no model


@dataclass(frozen=True)
class Dialect:
    name: str
    parse: Callable[[bytes, Context], EmbeddingRequest]
    encode: Callable[[np.ndarray, EmbeddingRequest, Trace], bytes]
    error_detail: bool = False   # errors carry `detail` too (Voyage's SDK reads it)
