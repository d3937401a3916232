"""Operator authentication: `Authorization: Bearer $LETHE_ADMIN_TOKEN`, compared in constant time."""

from __future__ import annotations

import hmac

from fastapi import Request

from gateway.errors import AuthenticationError


def require_operator(request: Request) -> None:
    """FastAPI dependency for operator routes. The token is never logged or echoed."""
    expected: str | None = request.app.state.admin_token
    if not expected:
        raise AuthenticationError("operator routes are disabled: start the gateway with LETHE_ADMIN_TOKEN set")
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented:
        raise AuthenticationError("missing operator token: send 'Authorization: Bearer <LETHE_ADMIN_TOKEN>'")
    if not hmac.compare_digest(presented.strip().encode(), expected.encode()):
        raise AuthenticationError("invalid operator token")
