"""Public model names -> deployments of one embedding space, and dispatch to them.

A request's inputs are split into chunks of the deployment's max batch and
sent concurrently; each chunk falls back, in priority order, to the next
deployment of the same space when one fails with a retryable error, so one
failed chunk does not cost the whole request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from router.auth import Principal
from router.config import Config, Deployment, ModelConfig
from router.errors import InvalidRequest, ModelNotFound, PermissionDenied, RouterError
from router.providers.base import EmbedResult, Provider, estimate_tokens


@dataclass(frozen=True)
class Target:
    deployment: Deployment
    provider: Provider

    @property
    def label(self) -> str:
        return f"{self.deployment.provider}/{self.deployment.model}"


@dataclass(frozen=True)
class Route:
    model: ModelConfig
    targets: tuple[Target, ...]


@dataclass(frozen=True)
class Dispatched:
    vectors: np.ndarray
    item_tokens: list[int]
    tokens_estimated: bool
    served_by: tuple[str, ...]
    attempts: int


class Routes:
    def __init__(self, config: Config, providers: Mapping[str, Provider]) -> None:
        self._by_name: dict[str, Route] = {}
        self.models = config.models
        for model in config.models.values():
            route = Route(model, tuple(Target(d, providers[d.provider]) for d in model.deployments))
            for name in (model.name, *model.aliases):
                self._by_name[name] = route

    def resolve(self, name: str, principal: Principal) -> Route:
        route = self._by_name.get(name)
        if route is None:
            raise ModelNotFound(f"The model '{name}' does not exist.", param="model")
        if not principal.allows(name, route.model.name):
            raise PermissionDenied(f"This key may not use the model '{name}'.", param="model")
        return route

    def visible(self, principal: Principal) -> list[ModelConfig]:
        return [m for m in self.models.values() if principal.allows(m.name, *m.aliases)]


# Told of every failed upstream call: (provider name, model name, the error, whether another deployment is tried).
OnFailure = Callable[[str, str, RouterError, bool], None]


def _ignore(provider: str, model: str, error: RouterError, fell_back: bool) -> None:
    pass


async def dispatch(route: Route, inputs: Sequence, *, tokens: bool, dimensions: int | None,
                   on_failure: OnFailure = _ignore) -> Dispatched:
    targets = _eligible(route, tokens=tokens, dimensions=dimensions)
    # One chunk size that every fallback can take, so a chunk moves between deployments whole.
    size = min(t.provider.capabilities(t.deployment.model).max_batch for t in targets)
    chunks = [inputs[i: i + size] for i in range(0, len(inputs), size)]
    outcomes = await asyncio.gather(*(_with_fallback(targets, c, route.model, dimensions, on_failure)
                                      for c in chunks))
    vectors = outcomes[0][0].vectors if len(outcomes) == 1 else np.concatenate([o[0].vectors for o in outcomes])
    item_tokens = [t for o in outcomes for t in _item_tokens(o[0], o[3])]
    return Dispatched(
        vectors=vectors,
        item_tokens=item_tokens,
        tokens_estimated=any(o[0].tokens_estimated for o in outcomes),
        served_by=tuple(dict.fromkeys(o[1] for o in outcomes)),
        attempts=sum(o[2] for o in outcomes),
    )


def _eligible(route: Route, *, tokens: bool, dimensions: int | None) -> list[Target]:
    targets = list(route.targets)
    if tokens:
        targets = [t for t in targets if t.provider.capabilities(t.deployment.model).accepts_tokens]
        if not targets:
            raise InvalidRequest(f"The model '{route.model.name}' takes text input, not token ids.",
                                 param="input", code="token_input_unsupported")
    if dimensions is not None and not route.model.matryoshka:
        targets = [t for t in targets if t.provider.capabilities(t.deployment.model).supports_dimensions]
        if not targets:
            raise InvalidRequest(f"The model '{route.model.name}' does not support 'dimensions'.",
                                 param="dimensions", code="dimensions_unsupported")
    return targets


async def _with_fallback(targets: Sequence[Target], chunk: Sequence, model: ModelConfig,
                         dimensions: int | None, on_failure: OnFailure) -> tuple[EmbedResult, str, int, Sequence]:
    last: RouterError | None = None
    for attempt, target in enumerate(targets, start=1):
        try:
            return await _call(target, chunk, model, dimensions), target.label, attempt, chunk
        except RouterError as exc:
            if exc.status >= 500 or exc.status == 429:  # the upstream's failure, not the client's input
                on_failure(target.deployment.provider, model.name, exc, exc.retryable and attempt < len(targets))
            if not exc.retryable:
                raise
            last = exc
    assert last is not None
    raise last


async def _call(target: Target, inputs: Sequence, model: ModelConfig, dimensions: int | None) -> EmbedResult:
    caps = target.provider.capabilities(target.deployment.model)
    native = dimensions if caps.supports_dimensions else None
    result = await target.provider.embed(inputs, model=target.deployment.model, dimensions=native)
    if dimensions is not None and native is None:
        result = EmbedResult(_truncate(result.vectors, dimensions, model.name), result.tokens,
                             result.item_tokens, result.tokens_estimated)
    return result


def _truncate(vectors: np.ndarray, dimensions: int, model: str) -> np.ndarray:
    """Matryoshka: keep the leading dimensions, then renormalise to unit length."""
    if dimensions > vectors.shape[1]:
        raise InvalidRequest(f"'dimensions' is {dimensions}, but the model '{model}' has "
                             f"{vectors.shape[1]}.", param="dimensions")
    head = vectors[:, :dimensions]
    norms = np.linalg.norm(head, axis=1, keepdims=True)
    return np.ascontiguousarray(head / np.maximum(norms, 1e-12), dtype=np.float32)


def _item_tokens(result: EmbedResult, inputs: Sequence) -> list[int]:
    """Per-input tokens: exact where the provider says, else the total shared by estimated size."""
    if result.item_tokens is not None:
        return list(result.item_tokens)
    weights = np.asarray(estimate_tokens(inputs), dtype=np.float64)
    shares = np.floor(weights * (result.tokens / weights.sum())).astype(np.int64)
    shares[-1] += result.tokens - int(shares.sum())
    return shares.tolist()
