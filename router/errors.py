"""The router's errors, and their one rendering as ErrorData.

Every failure a client can see is one of these; adapters translate their
upstream's failures into them at the edge, so nothing else maps errors.

    RouterError(status, type, code)
    ├── InvalidRequest        400  invalid_request_error   (param says which field)
    ├── AuthenticationError   401  authentication_error    invalid_api_key
    ├── PermissionDenied      403  permission_error        model_not_allowed
    ├── NotFound              404  not_found_error
    │   └── ModelNotFound     404  not_found_error         model_not_found
    ├── MethodNotAllowed      405  invalid_request_error   method_not_allowed
    ├── PayloadTooLarge       413  invalid_request_error   request_too_large
    ├── UnsupportedMediaType  415  invalid_request_error   unsupported_media_type
    ├── RateLimited           429  rate_limit_error        rate_limit_exceeded (Retry-After)
    ├── ClientDisconnected    499  client_closed_request   (logs and metrics only: nobody is listening)
    ├── InternalError         500  internal_error          (a bug; still ErrorData)
    ├── UpstreamError         502  upstream_error
    ├── Overloaded            503  overloaded_error        (Retry-After)
    └── UpstreamTimeout       504  timeout_error
"""

from __future__ import annotations

import math

import orjson
from starlette.responses import Response


class RouterError(Exception):
    status: int = 500
    type: str = "internal_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if type is not None:
            self.type = type
        self.retry_after = retry_after
        self.extra_headers = headers or {}

    @property
    def retryable(self) -> bool:
        """Whether another attempt (here or at another deployment) may succeed."""
        return self.status in (429, 502, 503, 504)

    @property
    def retry_here(self) -> bool:
        """Whether the same deployment may answer differently soon. Not when it refused our
        credentials, nor when a local model's queue is full (the client gets its fast 503)."""
        return self.retryable and self.code not in ("upstream_auth_failed", "queue_full")

    def body(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return dict(self.extra_headers)
        return {**self.extra_headers, "retry-after": str(max(1, math.ceil(self.retry_after)))}


class InvalidRequest(RouterError):
    status, type, code = 400, "invalid_request_error", "invalid_request"


class AuthenticationError(RouterError):
    status, type, code = 401, "authentication_error", "invalid_api_key"


class PermissionDenied(RouterError):
    status, type, code = 403, "permission_error", "model_not_allowed"


class NotFound(RouterError):
    status, type, code = 404, "not_found_error", "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class MethodNotAllowed(RouterError):
    status, type, code = 405, "invalid_request_error", "method_not_allowed"


class PayloadTooLarge(RouterError):
    status, type, code = 413, "invalid_request_error", "request_too_large"


class UnsupportedMediaType(RouterError):
    status, type, code = 415, "invalid_request_error", "unsupported_media_type"


class RateLimited(RouterError):
    status, type, code = 429, "rate_limit_error", "rate_limit_exceeded"


class ClientDisconnected(RouterError):
    status, type, code = 499, "client_closed_request", "client_disconnected"


class InternalError(RouterError):
    status, type, code = 500, "internal_error", "internal_error"


class UpstreamError(RouterError):
    status, type, code = 502, "upstream_error", "upstream_error"


class Overloaded(RouterError):
    status, type, code = 503, "overloaded_error", "overloaded"


class UpstreamTimeout(RouterError):
    status, type, code = 504, "timeout_error", "upstream_timeout"


_BY_STATUS: dict[int, type[RouterError]] = {
    cls.status: cls
    for cls in (
        InvalidRequest, AuthenticationError, PermissionDenied, NotFound,
        MethodNotAllowed, PayloadTooLarge, UnsupportedMediaType, RateLimited,
        InternalError, UpstreamError, Overloaded, UpstreamTimeout,
    )
}


def for_status(status: int) -> type[RouterError]:
    """The error class a plain HTTP status maps to (Starlette's own 404/405...)."""
    return _BY_STATUS.get(status, InvalidRequest if 400 <= status < 500 else InternalError)


def render(error: RouterError, headers: dict[str, str] | None = None, *, detail: bool = False) -> Response:
    """The one place an error becomes an HTTP response. `detail` (on /v1/embeddings): ErrorData plus
    the message as a top-level `detail`, the one field Voyage's SDK builds its error classes from
    (OpenAI's SDK reads `error` and ignores it)."""
    all_headers = {**(headers or {}), **error.headers()}
    body = error.body()
    if detail:
        body["detail"] = error.message
    return Response(
        orjson.dumps(body),
        status_code=error.status,
        media_type="application/json",
        headers=all_headers,
    )


def forget_frames(error: BaseException | None) -> None:
    """Drop the tracebacks of a handled error and its causes. A retried call keeps its error
    (`last_error`), and the error's frames keep the caller: a cycle that holds the request's
    inputs (megabytes, for a long text) until a full collection, long after the answer."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        error.__traceback__ = None
        error = error.__cause__ or error.__context__
