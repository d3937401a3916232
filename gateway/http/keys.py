"""API key management over HTTP (`/v1/admin/keys`, operator role): create (the key is shown once), list,
revoke. The key store itself is gateway.ledger.keys; `lethe keys` is the command-line client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.errors import ErrorMap, NotFoundError, UnprocessableError, call_remote, error_responses
from gateway.http.auth import AccessControl, Requires
from gateway.ledger.actors import Actor, Role
from gateway.ledger.keys import ApiKey, KeyStore

T = TypeVar("T")

OPERATOR = Requires(Role.OPERATOR)
router = APIRouter(dependencies=[Depends(OPERATOR)])

_ERRORS = error_responses(401, 403, 413, 429, 503)
_STORE_ERRORS: ErrorMap = [(ValueError, lambda e: UnprocessableError(str(e), param="name"))]
_STORE_TIMEOUT_S = 10.0


class KeyCreate(BaseModel):
    """`POST /v1/admin/keys`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._@-]*$",
        description="Who or what holds the key (recorded as the actor of everything it does).",
    )
    role: Role = Field(description="requester, auditor, operator or chat")


class KeyInfo(BaseModel):
    id: str
    object: Literal["api_key"] = "api_key"
    name: str
    role: Role
    prefix: str = Field(description="The key's first characters, to tell keys apart; never the whole key.")
    created_at: str
    created_by: str
    revoked_at: str | None = None

    @classmethod
    def of(cls, key: ApiKey) -> KeyInfo:
        return cls(**key.to_dict())


class KeyCreated(KeyInfo):
    key: str = Field(description="The API key itself. Shown this once: only its SHA-256 is stored.")


class KeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[KeyInfo]


def _store(request: Request) -> KeyStore:
    keys: KeyStore = request.app.state.keys  # set by create_app (this router is mounted only with a store)
    return keys


async def _in_store(call: Callable[[], T]) -> T:
    """A key-store call on a worker thread; a stalled or unreachable ledger is a 503, not a hang."""
    return await call_remote(
        asyncio.to_thread(call),
        timeout_s=_STORE_TIMEOUT_S,
        service="key store",
        code="keys_unavailable",
        errors=_STORE_ERRORS,
    )


def _actor(request: Request) -> Actor:
    actor: Actor = request.state.actor  # set by the router's Requires dependency
    return actor


@router.post(
    "/v1/admin/keys", status_code=201, response_model=KeyCreated, responses={**_ERRORS, **error_responses(400, 422)}
)
async def create_key(body: KeyCreate, request: Request) -> JSONResponse:
    """A new API key with one role. The answer is the only time the key is shown."""
    store, actor = _store(request), _actor(request).label
    key, secret = await _in_store(lambda: store.create(body.name, body.role, actor=actor))
    created = KeyCreated(**key.to_dict(), key=secret)
    return JSONResponse(created.model_dump(mode="json"), status_code=201, headers={"cache-control": "no-store"})


@router.get("/v1/admin/keys", response_model=KeyList, responses={**_ERRORS, **error_responses(422)})
async def list_keys(
    request: Request, include_revoked: bool = Query(True, description="list revoked keys too")
) -> KeyList:
    store = _store(request)
    keys = await _in_store(lambda: store.list(include_revoked=include_revoked))
    return KeyList(data=[KeyInfo.of(k) for k in keys])


@router.post("/v1/admin/keys/{key_id}/revoke", response_model=KeyInfo, responses={**_ERRORS, **error_responses(404)})
async def revoke_key(key_id: str, request: Request) -> KeyInfo:
    """Revoke a key: this replica refuses it at once, every other within `server.key_cache_s`."""
    store, actor = _store(request), _actor(request).label
    key = await _in_store(lambda: store.revoke(key_id, actor=actor))
    if key is None:
        raise NotFoundError(f"no API key with id {key_id!r}", param="key_id")
    access: AccessControl = request.app.state.access
    access.forget_key(key.id)
    return KeyInfo.of(key)
