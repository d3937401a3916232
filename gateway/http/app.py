"""Builds the FastAPI app from the config and its parts: routes, error mapping, body limit."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.chat import routes as chat_routes
from gateway.chat.service import ChatService
from gateway.errors import APIError, error_body
from gateway.forget import routes as forget_routes
from gateway.forget.service import ForgetService
from gateway.http import health
from gateway.http import keys as key_routes
from gateway.http.auth import AccessControl, AccessSettings
from gateway.jobs import routes as unlearn_routes
from gateway.jobs.service import UnlearnService
from gateway.ledger.keys import KeyStore
from gateway.observability import metrics
from gateway.weights import routes as admin_routes
from gateway.weights.service import VersionsService

log = logging.getLogger(__name__)


class BodyLimitMiddleware:
    """Answers 413 for bodies over `max_bytes` (or a path's own lower limit in `path_limits`), by header
    or by counting a chunked body. A declared length over the limit is refused before one byte of the
    body is read: behind Ray Serve's proxy the body then never travels to the replica at all."""

    def __init__(self, app: ASGIApp, max_bytes: int, path_limits: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = {path: min(limit, max_bytes) for path, limit in (path_limits or {}).items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.path_limits.get(scope.get("path", ""), self.max_bytes)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(send, limit)
            return
        # Buffer up to the limit so an undeclared oversized body is refused before any route runs.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                await self._reject(send, limit)
                return
            chunks.append(body)
            more = message.get("more_body", False)
        replay: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay_receive() -> Message:
            return replay.pop() if replay else await receive()

        await self.app(scope, replay_receive, send)

    async def _reject(self, send: Send, limit: int) -> None:
        payload = json.dumps(
            error_body(
                f"request body exceeds the limit of {limit} bytes",
                "invalid_request_error",
                code="request_too_large",
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})


class RequestMetricsMiddleware:
    """Counts and times every HTTP request by route template and status (see gateway.observability.metrics).

    The template comes from the route that handled the request; a request refused before routing (413)
    falls back to its path when that is one of the app's fixed paths, else `other`: never a raw path."""

    def __init__(self, app: ASGIApp, paths: frozenset[str]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            template = getattr(scope.get("route"), "path", None)
            path = scope.get("path")
            route = template if isinstance(template, str) else path if path in self.paths else "other"
            metrics.record_request(route, status, time.perf_counter() - started)


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(err.get("type") == "json_invalid" for err in errors):
        return JSONResponse(
            error_body("the request body is not valid JSON", "invalid_request_error", code="invalid_json"), 400
        )
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    details = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}" for e in errors[:5]
    )
    return JSONResponse(
        error_body(f"invalid request: {details}", "invalid_request_error", code="invalid_value", param=param), 422
    )


def create_app(
    chat_service: ChatService,
    *,
    max_body_bytes: int,
    max_chat_body_bytes: int | None = None,
    forget: ForgetService | None = None,
    jobs: UnlearnService | None = None,
    versions: VersionsService | None = None,
    admin_token: str | None = None,
    access: AccessControl | None = None,
    keys: KeyStore | None = None,
    request_timeout_s: float | None = None,
    diagnostic_headers: bool = False,
) -> FastAPI:
    """The gateway's ASGI app; the caller supplies the wired services (Serve replica or a test).

    `access` decides who may call what (default: `admin_token` as the only credential); with `keys`
    the key routes are mounted and API keys work."""
    app = FastAPI(title="Lethe", version="0.1.0", summary="A model-serving gateway that makes an LLM forget.")
    app.state.chat = chat_service
    app.state.forget = forget
    app.state.jobs = jobs
    app.state.versions = versions
    app.state.keys = keys
    app.state.access = access or AccessControl(AccessSettings(admin_token=admin_token), keys)
    app.state.request_timeout_s = request_timeout_s
    app.state.diagnostic_headers = diagnostic_headers
    app.include_router(chat_routes.router)
    if forget is not None:
        app.include_router(forget_routes.router)
    if jobs is not None:
        app.include_router(unlearn_routes.router)
    if versions is not None:
        app.include_router(admin_routes.router)
    if keys is not None:
        app.include_router(key_routes.router)
    app.include_router(health.router)
    chat_limit = {} if max_chat_body_bytes is None else {"/v1/chat/completions": max_chat_body_bytes}
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes, path_limits=chat_limit)
    # Outermost: a 413 from the body limit is counted too.
    fixed = frozenset(r.path for r in app.routes if isinstance(r, Route) and "{" not in r.path)
    app.add_middleware(RequestMetricsMiddleware, paths=fixed)

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.message, exc.type, code=exc.code, param=exc.param), exc.status, headers=exc.headers or None
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(str(exc.detail), kind, code=str(exc.status_code)), exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        request_id = uuid.uuid4().hex
        log.exception("unhandled error (request id %s)", request_id)
        message = f"internal error (request id {request_id}); the gateway's log has the details"
        return JSONResponse(error_body(message, "server_error", code="internal_error"), 500)

    return app
