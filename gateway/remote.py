"""Calls from the ingress to a singleton deployment (authority, jobs, versions), with one mapping
of their failures to API errors: a timeout or a dead deployment is a 503, never a 500."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from gateway.errors import APIError, ServiceUnavailableError

ErrorMap = Sequence[tuple[type[BaseException], Callable[[BaseException], APIError]]]


def unwrap_remote_error(exc: BaseException) -> BaseException:
    """Ray wraps exceptions raised in a replica; the original is its `cause` when there is one."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


async def call_remote(coro: Awaitable[Any], *, timeout_s: float, service: str, code: str,
                      errors: ErrorMap = (), timeout_hint: str = "") -> Any:
    """Await `coro`; exceptions listed in `errors` (by their original type) become the API error
    their function returns, anything else a 503 naming `service`."""
    try:
        return await asyncio.wait_for(coro, timeout_s)
    except asyncio.TimeoutError:
        raise ServiceUnavailableError(
            f"the {service} did not answer within {timeout_s:g} s{timeout_hint}", code=code
        ) from None
    except Exception as exc:
        original = unwrap_remote_error(exc)
        for kind, to_error in errors:
            if isinstance(original, kind):
                raise to_error(original) from None
        raise ServiceUnavailableError(
            f"the {service} is unavailable: {type(original).__name__}", code=code
        ) from None
