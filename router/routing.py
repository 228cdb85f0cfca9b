"""Public model names -> deployments of one embedding space, and dispatch to them.

A request's inputs are split into chunks of the deployments' max batch, sent
concurrently, and merged by index. Each chunk is a `_ChunkRun`:

    choose   a deployment that can take a call now (not cooling down, under
             its caps, not paused by a Retry-After), by the model's strategy;
             wait for one when all are busy, if that fits the deadline
    call     it (the caller cancels it at the request deadline); with hedging, a slow call gets
             a second one at another deployment and the first answer wins
    retry    on 429, 5xx, timeouts and broken connections: another
             deployment at once, or the same one after a backoff (exponential,
             full jitter, never shorter than its Retry-After); never on
             400/401/403/404; at most `max_attempts` calls per chunk

So one failed chunk costs only itself, and a request gets its vectors or an
ErrorData before its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from router import protocol, quantize
from router.auth import Principal
from router.breaker import Transition
from router.coalesce import Coalescer
from router.deployment_caps import AtCapacity, SharedCaps
from router.deployments import DeploymentState
from router.errors import (
    InvalidRequest,
    ModelNotFound,
    Overloaded,
    PermissionDenied,
    RouterError,
    UpstreamError,
)
from router.protocol import EmbeddingRequest
from router.providers.base import DEFAULT_OPTIONS, Capabilities, EmbedResult, Options, Provider, estimate_tokens
from router.settings import Config, Deployment, ModelConfig
from router.strategies import STRATEGIES


@dataclass(frozen=True, eq=False)
class Target:
    state: DeploymentState
    provider: Provider

    @property
    def label(self) -> str:
        return self.state.label


class Route:
    """A public model's deployments, their strategy, and a wake-up for requests waiting on capacity."""

    def __init__(self, model: ModelConfig, targets: tuple[Target, ...], max_attempts: int,
                 backoff: tuple[float, float], rng: random.Random, *, max_retry_after_s: float = 60.0,
                 widths: dict[str, int] | None = None, shared_caps: SharedCaps | None = None) -> None:
        self.model, self.targets, self.max_attempts = model, targets, max_attempts
        self.backoff_s, self.backoff_max_s = backoff
        self.max_retry_after_s = max_retry_after_s
        # The width of each embedding space's vectors, as first answered: an answer of another
        # width is an upstream fault (shared by every route, kept across reloads).
        self.widths = widths if widths is not None else {}
        self.strategy = STRATEGIES[model.strategy]
        self.rng = rng
        # With one deployment there is nothing to fail over to: cooling it down would
        # turn a partial outage into a full one, so its breaker only reports.
        self.use_breaker = len(targets) > 1
        # Whether a request's `input_type` changes its vectors (some deployment sends it upstream):
        # only then does it reach the upstream, the cache key and the coalescing options.
        self.takes_input_type = any(t.provider.capabilities(t.state.deployment.model).takes_input_type
                                    for t in targets)
        self.shared_caps = shared_caps   # the deployments' caps across replicas (Redis), if counted there
        self.prices = {t.label: t.state.deployment.price_per_million_tokens or 0.0 for t in targets}  # USD/M
        self._freed: asyncio.Event | None = None

    def options(self, req: EmbeddingRequest) -> Options:
        """A request's upstream options as this model's deployments can honour them: `input_type` only
        where it changes the vectors (else the request shares their cache entries); refusing over-long
        inputs (`refuse_long`: the field that asked) and an upstream's own int8/uint8 only where every
        deployment can, else a 400 naming the field."""
        refuse_long = req.refuse_long
        dtype = req.output_dtype if req.output_dtype in quantize.UPSTREAM_ONLY else "float"
        if req.input_type is None and refuse_long is None and dtype == "float":
            return DEFAULT_OPTIONS
        caps = [t.provider.capabilities(t.state.deployment.model) for t in self.targets]
        if refuse_long is not None and not all(c.refuses_long for c in caps):
            raise InvalidRequest(f"'{refuse_long}': the model '{self.model.name}' cannot refuse over-long inputs: "
                                 "some of its deployments cut them", param=refuse_long,
                                 code=f"{refuse_long}_unsupported")
        if dtype != "float" and not all(dtype in c.quantizes for c in caps):
            param = req.options.get("dtype_param", "output_dtype")
            raise InvalidRequest(f"the model '{protocol.clip(self.model.name, 80)}' cannot return '{param}' {dtype}: "
                                 f"not every deployment of it quantises to it (the router computes "
                                 f"{', '.join(quantize.COMPUTED)} from floats for any model)",
                                 param=param, code="output_dtype_unsupported")
        if dtype != "float" and req.dimensions is not None and not all(c.supports_dimensions for c in caps):
            raise InvalidRequest(f"'dimensions' with {dtype}: the model '{self.model.name}' has deployments that "
                                 "cannot shorten quantised vectors themselves", param="dimensions")
        return Options(req.input_type if self.takes_input_type else None, refuse_long is None, dtype)

    def freed(self) -> None:
        """A call ended: wake the requests waiting for a deployment's capacity."""
        if self._freed is not None:
            self._freed.set()
            self._freed = None

    async def wait_freed(self, timeout: float) -> None:
        if self._freed is None:
            self._freed = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._freed.wait(), timeout)


class Routes:
    def __init__(self, config: Config, providers: Mapping[str, Provider], previous: Routes | None = None,
                 rng: random.Random | None = None, shared_caps: SharedCaps | None = None) -> None:
        """`previous`: the snapshot this one replaces; a deployment whose settings did not
        change keeps its state (health, latency, caps). `shared_caps`: count the deployments'
        caps in Redis too (kept from `previous` when not given)."""
        self._by_name: dict[str, Route] = {}
        self.shared_caps: SharedCaps | None = shared_caps or (previous.shared_caps if previous is not None
                                                              else None)
        self.models = config.models
        self.states: dict[tuple[str, str, str], DeploymentState] = {}
        self.providers = config.providers
        self.widths: dict[str, int] = previous.widths if previous is not None else {}
        rng = rng or random.Random()
        old = previous.states if previous is not None else {}
        old_providers = previous.providers if previous is not None else {}
        routing = config.routing
        for model in config.models.values():
            targets = []
            for d in model.deployments:
                key = (model.name, d.provider, d.model)
                state = old.get(key)
                # A changed deployment (or provider: a new key, URL or timeout) starts afresh: its
                # pause and breaker were verdicts on what it was.
                if (state is None or state.deployment != d or state.breaker.policy != routing.cooldown
                        or old_providers.get(d.provider) != config.providers[d.provider]):
                    state = DeploymentState(model.name, d, routing.cooldown,
                                            _coalescer(d, providers[d.provider].capabilities(d.model)))
                self.states[key] = state
                targets.append(Target(state, providers[d.provider]))
            route = Route(model, tuple(targets), model.max_attempts or routing.max_attempts,
                          (routing.backoff_s, routing.backoff_max_s), rng,
                          max_retry_after_s=routing.max_retry_after_s, widths=self.widths,
                          shared_caps=self.shared_caps)
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


def _coalescer(deployment: Deployment, caps: Capabilities) -> Coalescer | None:
    """The deployment's own `coalesce_ms`, else its provider's; 0 is off."""
    wait_s = deployment.coalesce_ms / 1000 if deployment.coalesce_ms is not None else caps.coalesce_s
    return Coalescer(wait_s, caps.max_batch) if wait_s > 0 else None


class Observer:
    """Told what routing does. This one ignores it; `router.metrics.Telemetry` records it."""

    def call_failed(self, target: Target, error: RouterError) -> None: ...

    def retried(self, model: str, *, fallback: bool) -> None: ...

    def hedged(self, model: str) -> None: ...

    def called(self, target: Target, inputs: int) -> None: ...

    def health_changed(self, target: Target, transition: Transition) -> None: ...


@dataclass(frozen=True)
class Dispatched:
    vectors: np.ndarray
    item_tokens: list[int]
    tokens_estimated: bool
    served_by: tuple[str, ...]
    attempts: int
    cost_usd: float = 0.0   # its tokens at the serving deployments' prices


@dataclass(frozen=True)
class _Request:
    route: Route
    tokens: bool
    dimensions: int | None
    deadline: float          # on the event loop's clock; kept by the caller, which cancels dispatch there
    observer: Observer
    options: Options = DEFAULT_OPTIONS

    @property
    def shared_call(self) -> tuple:
        """What the upstream receives besides the inputs: requests that agree on it may share a call."""
        return self.tokens, self.dimensions, self.options


async def dispatch(route: Route, inputs: Sequence, *, tokens: bool, dimensions: int | None,
                   timeout_s: float, observer: Observer | None = None,
                   options: Options = DEFAULT_OPTIONS) -> Dispatched:
    """Every input's vector, in order. `timeout_s`: what is left of the request's deadline, which the
    caller keeps (cancelling this); here it decides whether waiting for a busy deployment can pay off."""
    targets = _eligible(route, tokens=tokens, dimensions=dimensions)
    request = _Request(route, tokens, dimensions, asyncio.get_running_loop().time() + timeout_s,
                       observer or Observer(), options)
    # One chunk size that every deployment can take, so a chunk moves between them whole.
    size = min(t.provider.capabilities(t.state.deployment.model).max_batch for t in targets)
    runs = [_ChunkRun(request, targets, inputs[i: i + size]) for i in range(0, len(inputs), size)]
    if len(runs) == 1:
        outcomes = [await runs[0].run()]
    else:
        outcomes = await _all_or_cancel([run.run() for run in runs])
    results = [o[0] for o in outcomes]
    if len({r.vectors.shape[1] for r in results}) > 1:  # each was checked; a reload between them differs
        raise UpstreamError(f"the deployments of the model '{route.model.name}' answered with vectors of "
                            f"different widths ({sorted({r.vectors.shape[1] for r in results})})")
    vectors = results[0].vectors if len(results) == 1 else np.concatenate([r.vectors for r in results])
    per_chunk = [_item_tokens(r, run.chunk) for run, r in zip(runs, results)]
    return Dispatched(
        vectors=vectors,
        item_tokens=[t for tokens in per_chunk for t in tokens],
        cost_usd=sum(sum(tokens) * route.prices[o[1]] for tokens, o in zip(per_chunk, outcomes)) / 1e6,
        tokens_estimated=any(r.tokens_estimated for r in results),
        served_by=tuple(dict.fromkeys(o[1] for o in outcomes)),
        attempts=sum(run.attempts for run in runs),
    )


async def _all_or_cancel(coros: list) -> list:
    """Like gather, but the first failure cancels the other chunks: their answers would be thrown away."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        errors = [exc for task in done if (exc := task.exception()) is not None]  # retrieves every one
        if errors:
            raise errors[0]
        return [task.result() for task in tasks]
    finally:
        cancel_quietly(tasks)


def cancel_quietly(tasks: Iterable[asyncio.Future]) -> None:
    """Cancel `tasks`; whatever they still end with is retrieved, so a sibling's failure is
    never logged as "Task exception was never retrieved" (with an upstream's words in it)."""
    for task in tasks:
        task.cancel()
        task.add_done_callback(_retrieve)


def _retrieve(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()


def _eligible(route: Route, *, tokens: bool, dimensions: int | None) -> list[Target]:
    targets = list(route.targets)
    if tokens:
        targets = [t for t in targets if _takes_tokens(t.provider.capabilities(t.state.deployment.model))]
        if not targets:
            raise InvalidRequest(f"The model '{route.model.name}' takes text input, not token ids.",
                                 param="input", code="token_input_unsupported")
    if dimensions is not None and not route.model.matryoshka:
        targets = [t for t in targets if t.provider.capabilities(t.state.deployment.model).supports_dimensions]
        if not targets:
            raise InvalidRequest(f"The model '{route.model.name}' does not support 'dimensions'.",
                                 param="dimensions", code="dimensions_unsupported")
    return targets


def _takes_tokens(caps: Capabilities) -> bool:
    """Forwards token ids, or decodes them with the tokenizer clients encoded them with."""
    return caps.accepts_tokens or caps.tokenizer is not None


def _blames_deployment(error: RouterError) -> bool:
    """Whether a failed call counts against the deployment's health (a 400 is the input's fault)."""
    return error.status == 429 or error.status >= 500


class _ChunkRun:
    def __init__(self, request: _Request, targets: list[Target], chunk: Sequence) -> None:
        self.request, self.targets, self.chunk = request, targets, chunk
        self.attempts = 0
        self.not_before: dict[Target, float] = {}  # a deployment this chunk failed at: its backoff
        self.barred: set[Target] = set()           # never again for this chunk (not error.retry_here)
        self.last_error: RouterError | None = None
        self.last_target: Target | None = None
        state_wants_tokens = any(t.state.deployment.tpm for t in targets)
        self.tokens = sum(estimate_tokens(chunk)) if state_wants_tokens else 0

    async def run(self) -> tuple[EmbedResult, str]:
        route, request = self.request.route, self.request
        while True:
            target = self._ready() or await self._wait_for_one()
            if self.attempts:
                request.observer.retried(route.model.name, fallback=target is not self.last_target)
            try:
                result, served = await self._attempt(target)
                return result, served.label
            except AtCapacity as busy:  # no call was made: skip it until its cap allows one
                self.attempts -= 1
                self.not_before[target] = asyncio.get_running_loop().time() + busy.wait_s
            except RouterError as exc:
                self.last_error = exc
                if not exc.retryable or self.attempts >= route.max_attempts:
                    raise

    def _ready(self, exclude: Target | None = None) -> Target | None:
        """A deployment that can take this chunk now, by the model's strategy."""
        route, now = self.request.route, asyncio.get_running_loop().time()
        ready = [t for t in self.targets
                 if t is not exclude and t not in self.barred and self.not_before.get(t, 0.0) <= now
                 and t.state.unavailable(now, self.tokens, use_breaker=route.use_breaker,
                                         caps=not self._joinable(t)) is None]
        if not ready:
            return None
        return ready[0] if len(ready) == 1 else route.strategy(ready, route.rng)

    async def _wait_for_one(self) -> Target:
        """Wait until a deployment can take the chunk, if that can happen before the deadline."""
        route, loop = self.request.route, asyncio.get_running_loop()
        while True:
            now = loop.time()
            waits, reasons, cooling = [], set(), []
            for t in self.targets:
                if t in self.barred:
                    continue
                backoff = self.not_before.get(t, 0.0) - now
                why = t.state.unavailable(now, self.tokens, use_breaker=route.use_breaker,
                                          caps=not self._joinable(t))
                if why is None:
                    waits.append(max(0.0, backoff))
                    reasons.add("backoff")
                elif why.wait_s is None:
                    cooling.append(t.state.breaker.cooldown_left(now))
                    reasons.add(why.reason)
                else:
                    waits.append(max(why.wait_s, backoff))
                    reasons.add(why.reason)
            left = self.request.deadline - now
            wait = min(waits, default=math.inf)
            if not waits or (wait != math.inf and wait >= left) or left <= 0:
                raise self._unavailable(reasons, wait if waits else min(cooling, default=None))
            await route.wait_freed(min(wait, left))
            if target := self._ready():
                return target

    def _joinable(self, target: Target) -> bool:
        """Whether a batch for this chunk's options is filling at the target: joining it takes no
        slot of the deployment's caps (the batch's one call waits for its slot)."""
        coalescer = target.state.coalescer
        return coalescer is not None and coalescer.filling(self.request.shared_call)

    def _unavailable(self, reasons: set[str], retry_after: float | None) -> RouterError:
        if self.last_error is not None:
            return self.last_error  # the upstream's own error says more than "busy"
        name = self.request.route.model.name
        if reasons <= {"cooling_down", "probing"}:
            return Overloaded(f"every deployment of the model '{name}' is cooling down after failures",
                              code="no_healthy_deployment", retry_after=retry_after)
        return Overloaded(f"every deployment of the model '{name}' is at its limits "
                          f"({', '.join(sorted(reasons))}) until past the request deadline",
                          code="deployments_busy", retry_after=retry_after)

    async def _attempt(self, target: Target) -> tuple[EmbedResult, Target]:
        """One call, or with hedging a race of two; failures are recorded for the next choice."""
        hedge = self.request.route.model.hedge_after_s
        if hedge is None or len(self.targets) < 2:
            return await self._call(target), target
        first = asyncio.ensure_future(self._call(target))
        done, _ = await asyncio.wait({first}, timeout=hedge)
        second = None if done else self._ready(exclude=target)
        if second is None:
            return await first, target
        self.request.observer.hedged(self.request.route.model.name)
        racing = {first: target, asyncio.ensure_future(self._call(second)): second}
        try:
            pending, error = set(racing), None
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.exception() is None:
                        return task.result(), racing[task]
                    error = task.exception()
            assert error is not None
            raise error
        finally:
            cancel_quietly(racing)

    async def _call(self, target: Target) -> EmbedResult:
        request, loop = self.request, asyncio.get_running_loop()
        self.attempts += 1
        self.last_target = target
        coalescer = target.state.coalescer
        try:  # the request's deadline is kept by the caller (pipeline._bounded), which cancels this
            if coalescer is None:
                return await _upstream(target, request, self.chunk, self.tokens)
            return await coalescer.embed(request.shared_call, self.chunk, functools.partial(_gate, target, request),
                                         functools.partial(_upstream, target, request))
        except RouterError as exc:
            if _blames_deployment(exc):
                if exc.retry_here:
                    self.not_before[target] = loop.time() + self._backoff(exc)
                else:
                    self.barred.add(target)
            raise

    def _backoff(self, error: RouterError) -> float:
        """Before this chunk tries the same deployment again: exponential with full jitter,
        and never sooner than the upstream's Retry-After."""
        route = self.request.route
        ceiling = min(route.backoff_max_s, route.backoff_s * 2 ** (self.attempts - 1))
        return max(route.rng.uniform(0, ceiling), error.retry_after or 0.0)


async def _upstream(target: Target, request: _Request, inputs: Sequence, tokens: int | None = None) -> EmbedResult:
    """One upstream call, as the deployment's state counts it (in flight, caps, health, latency).
    `tokens`: the call's estimate for the deployment's `tpm`, worked out here when not given."""
    state, loop = target.state, asyncio.get_running_loop()
    if tokens is None:
        tokens = sum(estimate_tokens(inputs)) if state.deployment.tpm else 0
    shared = request.route.shared_caps
    lease = await shared.acquire(state, tokens) if shared is not None else None  # AtCapacity: nothing counted
    started = loop.time()
    if transition := state.begin(started, tokens, len(inputs)):
        request.observer.health_changed(target, transition)
    request.observer.called(target, len(inputs))
    extra = 0  # tokens the call took beyond its estimate, settled with the shared tpm
    try:
        result = await _embed(target, inputs, request)
        extra = result.tokens - tokens if state.deployment.tpm else 0
    except RouterError as exc:
        if exc.retry_after is not None:  # an upstream may ask for a day; we wait at most this
            exc.retry_after = min(exc.retry_after, request.route.max_retry_after_s)
        if not _blames_deployment(exc):
            state.abandoned()
            raise
        transition = state.failed(loop.time(), exc.retry_after)
        request.observer.call_failed(target, exc)
        if transition:
            request.observer.health_changed(target, transition)
        raise
    except BaseException:
        state.abandoned()  # cancelled (a deadline, a hang-up): not a verdict on the deployment
        raise
    finally:
        request.route.freed()
        if lease is not None:
            assert shared is not None
            shared.release(state, lease, extra)
    now = loop.time()
    if transition := state.succeeded(now, now - started, tokens, result.tokens):
        request.observer.health_changed(target, transition)
    return result


async def _gate(target: Target, request: _Request, tokens: int) -> None:
    """Until the deployment may take one more call: a coalesced batch waits here (still filling)
    for its caps; a cooled-down deployment fails it, so its chunks go elsewhere."""
    route, loop = request.route, asyncio.get_running_loop()
    while (why := target.state.unavailable(loop.time(), tokens, use_breaker=route.use_breaker)) is not None:
        if why.wait_s is None:
            raise Overloaded(f"deployment {target.label} of the model '{route.model.name}' is cooling down",
                             code="no_healthy_deployment")
        await route.wait_freed(min(why.wait_s, 0.05))


async def _embed(target: Target, inputs: Sequence, request: _Request) -> EmbedResult:
    """One call, adapted to what the deployment takes: token ids decoded, `dimensions` by truncation."""
    deployment, dimensions = target.state.deployment, request.dimensions
    caps = target.provider.capabilities(deployment.model)
    if request.tokens and not caps.accepts_tokens and caps.tokenizer is not None:
        inputs = caps.tokenizer.decode(inputs)
    native = dimensions if caps.supports_dimensions else None
    result = await target.provider.embed(inputs, model=deployment.model, dimensions=native,
                                         options=request.options)
    route, width = request.route, result.vectors.shape[1]
    if dimensions is not None and width != dimensions:
        # Told `dimensions`, the upstream must answer that wide (a Matryoshka model's wider answer is cut
        # here); truncating ourselves, a `dimensions` over the width is the client's 400.
        if native is not None and not (route.model.matryoshka and width > dimensions):
            raise UpstreamError(f"provider {deployment.provider!r} returned {width}-wide vectors for "
                                f"'dimensions' {dimensions}", code="upstream_wrong_width")
        result = EmbedResult(_truncate(result.vectors, dimensions, route.model.name), result.tokens,
                             result.item_tokens, result.tokens_estimated)
    elif dimensions is None:
        space = target.state.deployment.space
        known = route.widths.setdefault(space, width)
        if width != known:
            raise UpstreamError(f"provider {deployment.provider!r} returned {width}-wide vectors; the "
                                f"embedding space {space!r} is {known} wide", code="upstream_wrong_width")
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
    if len(inputs) == 1:
        return [result.tokens]
    weights = np.asarray(estimate_tokens(inputs), dtype=np.float64)
    shares = np.floor(weights * (result.tokens / weights.sum())).astype(np.int64)
    shares[-1] += result.tokens - int(shares.sum())
    return shares.tolist()
