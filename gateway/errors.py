"""Typed API errors, their one mapping to HTTP status codes and OpenAI error bodies, and the one
mapping of a failed call to another deployment (timeout, dead replica) to a 503."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

log = logging.getLogger(__name__)


class WireModel(BaseModel):
    """Base of request bodies clients build: fields we do not use are ignored, not rejected (the
    official openai SDK sends some)."""

    model_config = ConfigDict(extra="ignore")


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return ErrorBody(error=ErrorDetail(message=message, type=type_, param=param, code=code)).model_dump()


class APIError(Exception):
    """An error a client sees: status, OpenAI `type`, machine `code`, offending `param`."""

    status = 400
    type = "invalid_request_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = dict(headers or {})  # sent with the error response (e.g. Retry-After)
        if code is not None:
            self.code = code


class BadRequestError(APIError):
    status = 400


class InvalidJSONError(APIError):
    status = 400
    code = "invalid_json"


class UnprocessableError(APIError):
    status = 422
    code = "invalid_value"


class AuthenticationError(APIError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDeniedError(APIError):
    """A valid key whose role does not allow the route; the message names the role(s) it needs."""

    status = 403
    type = "permission_error"
    code = "insufficient_role"


class RateLimitedError(APIError):
    """Over a per-key rate limit or concurrent-stream cap; `Retry-After` says when to try again."""

    status = 429
    type = "requests"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: int, code: str | None = None) -> None:
        super().__init__(message, code=code, headers={"Retry-After": str(max(1, retry_after_s))})


class RequestTimeoutError(APIError):
    """The request ran longer than `server.request_timeout_s`."""

    status = 504
    type = "timeout"
    code = "request_timeout"


class NotFoundError(APIError):
    status = 404
    type = "not_found_error"
    code = "not_found"


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"


class PayloadTooLargeError(APIError):
    status = 413
    code = "request_too_large"


class ServiceUnavailableError(APIError):
    status = 503
    type = "service_unavailable"
    code = "engine_not_ready"


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """A route's documented error statuses (`responses=`), each with the OpenAI error body."""
    return {code: {"model": ErrorBody} for code in sorted(set(codes))}


ErrorMap = Sequence[tuple[type[BaseException], Callable[[BaseException], APIError]]]
T = TypeVar("T")


def unwrap_remote_error(exc: BaseException) -> BaseException:
    """Ray wraps exceptions raised in a replica; the original is its `cause` when there is one."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


async def call_remote(
    coro: Awaitable[T], *, timeout_s: float, service: str, code: str, errors: ErrorMap = (), timeout_hint: str = ""
) -> T:
    """Await `coro`; exceptions listed in `errors` (by their original type) become the API error
    their function returns, anything else a 503 naming `service`."""
    try:
        return await asyncio.wait_for(coro, timeout_s)
    except TimeoutError:
        raise ServiceUnavailableError(
            f"the {service} did not answer within {timeout_s:g} s{timeout_hint}", code=code
        ) from None
    except Exception as exc:
        original = unwrap_remote_error(exc)
        for kind, to_error in errors:
            if isinstance(original, kind):
                raise to_error(original) from None
        # The client gets the kind of failure; what it said (paths, hosts, internals) goes to the log.
        log.warning("the %s failed: %r", service, original)
        raise ServiceUnavailableError(f"the {service} is unavailable: {type(original).__name__}", code=code) from None
