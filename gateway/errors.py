"""Typed API errors and their one mapping to HTTP status codes and OpenAI error bodies."""

from __future__ import annotations

from gateway.engines.base import EngineError


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


def from_engine_error(exc: EngineError) -> APIError:
    """Engine failures keep their status: a too-long prompt is the client's (400), the rest 503."""
    if exc.status == 400:
        return BadRequestError(str(exc), param="messages", code=exc.code)
    return ServiceUnavailableError(str(exc), code=exc.code)
