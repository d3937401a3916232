"""Typed API errors, their one mapping to HTTP status codes and OpenAI error bodies, and the one
mapping of a failed call to another deployment (timeout, dead replica) to a 503."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict


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

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
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
        raise ServiceUnavailableError(f"the {service} is unavailable: {type(original).__name__}", code=code) from None
