"""The provider contract: one required method, like httpx's BaseTransport.

A provider turns a list of inputs into an EmbedResult: a float32 array of
shape (n, d) in input order, and a token count. Each wire format lives in
its own module and is registered by its `kind:` in `router.providers.KINDS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from router.errors import UpstreamError

if TYPE_CHECKING:
    from router.token_ids import TokenDecoder

Inputs = Sequence[str] | Sequence[Sequence[int]]


@dataclass(frozen=True)
class EmbedResult:
    vectors: np.ndarray                  # float32, (n, d), row i answers input i
    tokens: int                          # as the upstream billed them, or counted/estimated
    item_tokens: Sequence[int] | None = None   # per input, where known exactly
    tokens_estimated: bool = False

    @classmethod
    def estimated(cls, vectors: np.ndarray, inputs: Inputs) -> EmbedResult:
        """For an upstream that reports no usage: tokens estimated per input, and marked so."""
        estimate = estimate_tokens(inputs)
        return cls(vectors, sum(estimate), estimate, tokens_estimated=True)


@dataclass(frozen=True)
class Capabilities:
    max_batch: int              # inputs per upstream call; the dispatcher chunks to it
    supports_dimensions: bool   # passes `dimensions` through
    accepts_tokens: bool        # token-id arrays may be forwarded as they are
    tokenizer: TokenDecoder | None = None   # else token-id arrays are decoded to text with this
    coalesce_s: float = 0.0     # concurrent chunks wait this long to share one call (0: each its own)
    takes_input_type: bool = False  # the API's vectors depend on a request's `input_type`
    refuses_long: bool = False      # with `truncate` off it refuses an over-long input (else it may cut it)
    quantizes: tuple[str, ...] = () # output types it returns itself (int8, uint8), by its own calibration


@dataclass(frozen=True)
class Options:
    """What a request asks of an upstream besides its inputs, model and dimensions."""

    input_type: str | None = None   # what the texts are for (`protocol.INPUT_TYPES`), for APIs that take it
    truncate: bool = True           # False: refuse an over-long input rather than cut it
    dtype: str = "float"            # or one of `Capabilities.quantizes`: the values are its integers


DEFAULT_OPTIONS = Options()


@dataclass(frozen=True)
class QueueStats:
    """A model's queue as a provider with its own queue (the local model) reports it."""

    queue_inputs: int                 # inputs waiting
    batch_sizes: Sequence[int]        # batches by size: counts per bucket of `batch_bounds`, last is larger
    batch_bounds: Sequence[int]
    batched_inputs: int               # inputs over every batch (the histogram's sum)


class Provider(Protocol):
    """What the router calls. Every method is here; `BaseProvider` gives the optional ones defaults."""

    name: str

    def capabilities(self, model: str) -> Capabilities: ...

    async def embed(self, inputs: Inputs, *, model: str, dimensions: int | None,
                    options: Options = DEFAULT_OPTIONS) -> EmbedResult: ...

    async def warm(self) -> None:
        """Load and run what the first request would (a local model), before the snapshot serves."""

    def stats(self) -> Mapping[str, QueueStats]:
        """Queues by model name, for /admin/status and /metrics; empty where the upstream owns its queue."""

    async def aclose(self) -> None: ...


class BaseProvider:
    """Defaults for `Provider`'s optional methods; a provider subclasses this and defines the rest."""

    name: str

    async def warm(self) -> None:
        return None

    def stats(self) -> Mapping[str, QueueStats]:
        return {}


@dataclass(frozen=True)
class ProviderKind:
    """What the registry knows of a wire format: its settings, and how to build it."""

    parse_settings: Callable[[Any], Any]            # config.Section -> frozen settings
    create: Callable[[str, Any], Provider]          # (name, settings) -> provider
    check_model: Callable[[Any, str], str | None] = lambda settings, model: None
    # For the generated config reference: (path under `providers.NAME`, dataclass of its fields)
    reference: tuple[tuple[str, type], ...] = ()


def checked_vectors(vectors: np.ndarray, expected: int, provider: str) -> np.ndarray:
    """An upstream answer we can trust: n finite rows of one length, else a 502."""
    if vectors.ndim != 2 or vectors.shape[0] != expected or vectors.shape[1] == 0:
        raise UpstreamError(f"provider {provider!r} returned {vectors.shape[0] if vectors.ndim else 0} "
                            f"vectors for {expected} inputs")
    if not np.isfinite(vectors).all():
        raise UpstreamError(f"provider {provider!r} returned non-finite values")
    return vectors


def estimate_tokens(inputs: Inputs) -> list[int]:
    """Per-input token estimate when an upstream reports none (about 4 chars a token)."""
    return [len(x) if not isinstance(x, str) else max(1, (len(x) + 3) // 4) for x in inputs]


def retry_after_from(headers: Any) -> float | None:
    """Seconds to wait, from Retry-After (seconds or HTTP date), retry-after-ms,
    or the x-ratelimit-reset-* headers OpenAI sends ("1s", "6m0s", "20ms")."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    if (value := headers.get("retry-after")) is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            from email.utils import parsedate_to_datetime
            from time import time
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time())
            except (TypeError, ValueError):
                pass
    resets = [r for h in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
              if (r := duration_s(headers.get(h))) is not None]
    return max(resets) if resets else None


def duration_s(text: object) -> float | None:
    """Seconds in a duration as APIs write it: "1s", "6m0s", "20ms", "1.5s", or a bare number."""
    if not isinstance(text, str) or not text:
        return None
    import re

    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts:
        try:
            return float(text)
        except ValueError:
            return None
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)
