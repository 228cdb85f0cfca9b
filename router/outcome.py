"""What one embeddings request did, typed: filled step by step (`Trace`), then frozen
(`Outcome`) for the log line and the metrics; the response headers read the same fields."""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass, field


class RequestIds:
    """Request ids unique across replicas, cheaply: a random per-process prefix and a counter,
    32 hex digits like a uuid4's (which cost ~3 us a request to make)."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._next = itertools.count().__next__

    def __call__(self) -> str:
        return f"{self._prefix}{self._next():016x}"


@dataclass(slots=True)
class Trace:
    """A request in progress; each pipeline step sets what it learnt."""

    request_id: str
    key: str = ""                 # the key's name, once authenticated
    model: str = ""               # as the client sent it
    route: str = ""               # the public model it resolved to
    inputs: int = 0
    deployment: str = ""          # `provider/model` that served the misses, comma-separated; "" = none called
    attempts: int = 0
    tokens: int = 0
    tokens_estimated: bool = False
    cache_hits: int = 0
    shared_inputs: int = 0        # answered by another request's in-flight call
    saved_tokens: int = 0         # of the inputs it did not compute (cache hits and shared)
    cost_usd: float = 0.0         # of the tokens it computed, at the serving deployments' prices
    upstream_ms: float | None = None
    started: float = field(default_factory=time.perf_counter)

    def finish(self, status: int, error: str | None, total_ms: float) -> Outcome:
        return Outcome(self.request_id, self.key, self.model, self.route, self.inputs, self.deployment,
                       self.attempts, self.tokens, self.tokens_estimated, self.cache_hits, self.shared_inputs,
                       self.saved_tokens, self.cost_usd, self.upstream_ms, status, error, total_ms)


@dataclass(frozen=True, slots=True)
class Outcome:
    request_id: str
    key: str
    model: str
    route: str
    inputs: int
    deployment: str
    attempts: int
    tokens: int
    tokens_estimated: bool
    cache_hits: int
    shared_inputs: int
    saved_tokens: int
    cost_usd: float
    upstream_ms: float | None
    status: int
    error: str | None             # the error's code, when it failed
    total_ms: float

    def log_fields(self) -> dict[str, object]:
        """The log line: what the request got to; a field it never reached is left out."""
        fields: dict[str, object] = {"request_id": self.request_id}
        if self.key:
            fields["key"] = self.key
        if self.model:
            fields.update(model=self.model, inputs=self.inputs)
        if self.route:
            fields["route"] = self.route
        if self.deployment:
            fields.update(deployment=self.deployment, attempts=self.attempts, tokens_estimated=self.tokens_estimated)
        if self.status == 200:
            fields.update(tokens=self.tokens, cache_hits=self.cache_hits)
            if self.shared_inputs:
                fields["shared_inputs"] = self.shared_inputs
        if self.upstream_ms is not None:
            fields["upstream_ms"] = self.upstream_ms
        if self.error is not None:
            fields["error"] = self.error
        fields.update(status=self.status, total_ms=self.total_ms)
        return fields
