"""Prometheus metrics, in a registry of the app's own (no global state).

Counters and histograms are updated on the request path, in plain dicts
(`Counts`, `Distribution`) turned into metrics when scraped; state that already
lives elsewhere (cache size, queue depths, Redis failures, reloads) is read
when Prometheus scrapes, by `_StateCollector`. Keys appear only by name, and
only names the config knows: an unknown model or key never becomes a label.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from router.breaker import COOLING_DOWN, HEALTHY, PROBING, Transition
from router.errors import RouterError
from router.routing import Observer, Target

if TYPE_CHECKING:
    from router.deployments import DeploymentState
    from router.outcome import Outcome
    from router.runtime import Services

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Counts:
    """A counter family kept as a dict (label values -> count) and made a Prometheus metric only when
    scraped: the request path pays a dict update, not prometheus_client's lock and child lookup per
    call. No lock: requests and scrapes run on the one event loop thread."""

    def __init__(self, name: str, doc: str, labels: Sequence[str]) -> None:
        self.name, self.doc, self.labels = name, doc, list(labels)
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, labels: tuple[str, ...], amount: float = 1) -> None:
        self.values[labels] = self.values.get(labels, 0) + amount

    def collect(self) -> Metric:
        family = CounterMetricFamily(self.name, self.doc, labels=self.labels)
        for labels, value in self.values.items():
            family.add_metric(labels, value)
        return family


class Distribution:
    """A histogram family, kept like `Counts`: per label values, a count per bucket and the sum."""

    def __init__(self, name: str, doc: str, labels: Sequence[str], buckets: Sequence[float]) -> None:
        self.name, self.doc, self.labels, self.bounds = name, doc, list(labels), list(buckets)
        self.values: dict[tuple[str, ...], list[float]] = {}   # [count per bucket ..., +Inf count, sum]

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        row = self.values.get(labels)
        if row is None:
            row = self.values[labels] = [0] * (len(self.bounds) + 1) + [0.0]
        row[bisect.bisect_left(self.bounds, value)] += 1  # Prometheus buckets count value <= bound
        row[-1] += value

    def collect(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.doc, labels=self.labels)
        edges = [*map(floatToGoString, self.bounds), "+Inf"]  # as prometheus_client writes `le`
        for labels, row in self.values.items():
            family.add_metric(list(labels), list(zip(edges, itertools.accumulate(row[:-1]))), sum_value=row[-1])
        return family


class Metrics:
    def __init__(self, services: Callable[[], Services | None]) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        prefix = "embeddings_router_"
        self.requests = Counts(f"{prefix}requests", "Embeddings requests by key name, model and status",
                               ["key", "model", "status"])
        self.latency = Distribution(f"{prefix}request_duration_seconds",
                                    "Embeddings request time: total, upstream (provider or local model) and "
                                    "router (total minus upstream)", ["part"], _SECONDS)
        self.tokens = Counts(f"{prefix}tokens", "Tokens served, by key name and model", ["key", "model"])
        self.inputs = Counts(f"{prefix}cache_inputs", "Inputs by how they were answered: hit (cache), "
                             "shared (another request's call), miss (computed)", ["result"])
        self.rate_limited = Counts(f"{prefix}rate_limited", "Requests refused by a key's limits", ["key", "type"])
        self.upstream_errors = Counts(f"{prefix}upstream_errors", "Failed calls to a provider, by error code",
                                      ["provider", "code"])
        self.retries = Counts(f"{prefix}retries", "Calls made again after a failed call (to any deployment)",
                              ["model"])
        self.fallbacks = Counts(f"{prefix}fallbacks", "Retries that went to another deployment than the "
                                "failed call", ["model"])
        self.hedges = Counts(f"{prefix}hedges", "Slow calls raced by a second call to another deployment", ["model"])
        self.upstream_calls = Counts(f"{prefix}upstream_calls", "Calls to upstreams (and the local models), "
                                     "by deployment; with coalescing, one carries several requests' inputs",
                                     ["model", "deployment"])
        self.inputs_per_call = Distribution(f"{prefix}upstream_inputs_per_call", "Inputs per upstream call",
                                            ["model", "deployment"],
                                            (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048))
        families = (self.requests, self.latency, self.tokens, self.inputs, self.rate_limited, self.upstream_errors,
                    self.retries, self.fallbacks, self.hedges, self.upstream_calls, self.inputs_per_call)
        r.register(_Families(families))
        r.register(_StateCollector(services))

    def request(self, outcome: Outcome) -> None:
        """Record one embeddings request."""
        key, model = outcome.key, outcome.route
        self.requests.inc((key, model, str(outcome.status)))
        total, upstream = outcome.total_ms, outcome.upstream_ms or 0.0
        self.latency.observe(("total",), total / 1000)
        self.latency.observe(("router",), max(0.0, total - upstream) / 1000)
        if outcome.upstream_ms is not None:
            self.latency.observe(("upstream",), upstream / 1000)
        if outcome.status == 200:
            self.tokens.inc((key, model), outcome.tokens)
            self.inputs.inc(("hit",), outcome.cache_hits)
            self.inputs.inc(("shared",), outcome.shared_inputs)
            self.inputs.inc(("miss",), outcome.inputs - outcome.cache_hits - outcome.shared_inputs)

    def refused(self, key: str, error: RouterError) -> None:
        if error.status == 429 and error.type in ("requests", "tokens"):  # the key's own limits
            self.rate_limited.inc((key, error.type))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class Telemetry(Observer):
    """What routing does, recorded: counters, and a log line whenever a deployment's health changes."""

    def __init__(self, metrics: Metrics, log: Any) -> None:
        self._metrics, self._log = metrics, log

    def call_failed(self, target: Target, error: RouterError) -> None:
        self._metrics.upstream_errors.inc((target.state.deployment.provider, error.code or error.type))

    def retried(self, model: str, *, fallback: bool) -> None:
        self._metrics.retries.inc((model,))
        if fallback:
            self._metrics.fallbacks.inc((model,))

    def hedged(self, model: str) -> None:
        self._metrics.hedges.inc((model,))

    def called(self, target: Target, inputs: int) -> None:
        labels = (target.state.model, target.state.label)
        self._metrics.upstream_calls.inc(labels)
        self._metrics.inputs_per_call.observe(labels, inputs)

    def health_changed(self, target: Target, transition: Transition) -> None:
        state = target.state
        fields = {"model": state.model, "deployment": state.label, "state": transition.state,
                  "reason": transition.reason}
        if transition.state == COOLING_DOWN:
            self._log.warning("deployment cooling down", cooldown_s=state.breaker.policy.cooldown_s, **fields)
        else:
            self._log.info("deployment health", **fields)


class _Families(Collector):
    def __init__(self, families: Iterable[Counts | Distribution]) -> None:
        self._families = tuple(families)

    def collect(self) -> Iterator[Metric]:
        for family in self._families:
            yield family.collect()


class _StateCollector(Collector):
    """Read at scrape time from the live services."""

    def __init__(self, services: Callable[[], Services | None]) -> None:
        self._services = services

    def collect(self) -> Iterator[Metric]:
        services = self._services()
        if services is None:
            return
        runtime = services.runtime
        p = "embeddings_router_"
        info = GaugeMetricFamily(f"{p}config_info", "The config version being served", labels=["version"])
        info.add_metric([runtime.config.version], 1)
        yield info
        yield GaugeMetricFamily(f"{p}config_loaded_timestamp_seconds", "When the served config was loaded",
                                value=runtime.loaded_at)
        if services.reloader is not None:
            reloads = CounterMetricFamily(f"{p}config_reloads", "Reload attempts by result", labels=["result"])
            for result, count in services.reloader.counts.items():
                reloads.add_metric([result], count)
            yield reloads
        memory = services.cache.memory
        yield GaugeMetricFamily(f"{p}cache_entries", "Vectors in the in-process cache",
                                value=len(memory) if memory is not None else 0)
        yield GaugeMetricFamily(f"{p}cache_bytes", "Bytes held by the in-process cache",
                                value=memory.size_bytes if memory is not None else 0)
        if services.redis is not None:
            yield GaugeMetricFamily(f"{p}redis_up", "1 unless the last Redis call failed",
                                    value=0 if services.redis.down else 1)
            yield CounterMetricFamily(f"{p}redis_errors", "Failed Redis calls", value=services.redis.failures)
        unchecked = getattr(services.limiter.backend, "unchecked", None)
        if unchecked is not None:
            yield CounterMetricFamily(f"{p}limiter_unchecked", "Requests decided by limits.on_redis_error "
                                      "while Redis was unreachable", value=unchecked)
        yield from _local_models(runtime.providers, p)
        yield from _deployments(runtime.routes.states.values(), p)


def _deployments(states: Iterable[DeploymentState], p: str) -> Iterator[Metric]:
    labels = ["model", "deployment"]
    state = GaugeMetricFamily(f"{p}deployment_state", "1 for the deployment's current health state "
                              "(healthy, cooling_down, probing)", labels=[*labels, "state"])
    cooldowns = CounterMetricFamily(f"{p}deployment_cooldowns", "Times the deployment was cooled down", labels=labels)
    in_flight = GaugeMetricFamily(f"{p}deployment_in_flight", "Calls in flight to the deployment", labels=labels)
    latency = GaugeMetricFamily(f"{p}deployment_latency_seconds", "Recent call latency (EWMA) of the deployment",
                                labels=labels)
    for s in states:
        names = [s.model, s.label]
        for name in (HEALTHY, COOLING_DOWN, PROBING):
            state.add_metric([*names, name], 1 if s.breaker.state == name else 0)
        cooldowns.add_metric(names, s.breaker.trips)
        in_flight.add_metric(names, s.in_flight)
        if s.latency_s is not None:
            latency.add_metric(names, s.latency_s)
    yield from (state, cooldowns, in_flight, latency)


def _local_models(providers: dict, p: str) -> Iterator[Metric]:
    depth = GaugeMetricFamily(f"{p}local_queue_inputs", "Inputs waiting for a local model", labels=["model"])
    sizes = HistogramMetricFamily(f"{p}local_batch_size", "Inputs per local model batch", labels=["model"])
    found = False
    for provider_name, provider in providers.items():
        for name, queue in provider.stats().items():
            found = True
            label = f"{provider_name}/{name}"
            depth.add_metric([label], queue.queue_inputs)
            cumulative, buckets = 0, []
            for bound, count in zip((*map(str, queue.batch_bounds), "+Inf"), queue.batch_sizes):
                cumulative += count
                buckets.append((bound, cumulative))
            sizes.add_metric([label], buckets, sum_value=queue.batched_inputs)
    if found:
        yield depth
        yield sizes
