"""Who may call what: API keys with one role each (and `LETHE_ADMIN_TOKEN`, the bootstrap operator),
per-key rate limits and concurrent-stream caps.

Every route declares the roles it admits with a `Requires` dependency; this module alone answers 401
(no key, unknown or revoked key), 403 (a valid key with another role, naming the role needed) and 429
(over a limit, with `Retry-After`). Keys are looked up by their SHA-256 (gateway.ledger.keys) on a
worker thread and remembered for `key_cache_s`. Limits are counted per ingress replica (the `limits`
package's moving window, in memory).
"""

from __future__ import annotations

import asyncio
import hmac
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from fastapi import Request
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from gateway.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServiceUnavailableError,
)
from gateway.ledger.actors import BOOTSTRAP_OPERATOR, Actor, Role
from gateway.ledger.keys import ApiKey, hash_key

# Remembered lookups per ingress replica; unknown keys are remembered too, so a flood of made-up keys
# costs one database query each at most once per `key_cache_s`, and never grows memory without bound.
_CACHE_ENTRIES = 10_000
_LOOKUP_TIMEOUT_S = 5.0


class KeyLookup(Protocol):
    """What access control needs of the key store (gateway.ledger.keys.KeyStore)."""

    def authenticate(self, secret: str) -> ApiKey | None: ...

    def owner_of(self, forget_id: str) -> str | None: ...


@dataclass(frozen=True)
class AccessSettings:
    """The access part of the config (`server.*` and `admin_token`)."""

    admin_token: str | None = None
    chat_auth: Literal["none", "keys"] = "none"
    rate_limit: str | None = None
    anonymous_rate_limit: str | None = None
    max_streams_per_key: int | None = None
    anonymous_max_streams: int | None = None
    key_cache_s: float = 5.0


class Requires:
    """FastAPI dependency: the route admits these roles (an operator key or the admin token always
    may, except where a route says otherwise). `chat=True`: the chat routes, open when
    `server.chat_auth` is `none`. Returns the acting key (None for an anonymous chat).

    >>> @router.get("/v1/admin/audit", dependencies=[Depends(Requires(Role.AUDITOR, Role.OPERATOR))])
    """

    def __init__(self, *roles: Role, chat: bool = False) -> None:
        if not roles:
            raise ValueError("a route admits at least one role")
        self.roles = frozenset(roles)
        self.chat = chat

    def needed(self) -> str:
        names = sorted(r.value for r in self.roles)
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]

    async def __call__(self, request: Request) -> Actor | None:
        access: AccessControl = request.app.state.access  # set by create_app
        actor = await access.authorize(request, self)
        request.state.actor = actor
        return actor


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented:
        return None
    return presented


class AccessControl:
    """Identifies the key of a request, checks its role, applies its limits.

    >>> access = AccessControl(AccessSettings(admin_token="t", rate_limit="20/second"), keys=KeyStore(ledger))
    """

    def __init__(
        self,
        settings: AccessSettings,
        keys: KeyLookup | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._keys = keys
        self._clock = clock
        self._cache: OrderedDict[str, tuple[ApiKey | None, float]] = OrderedDict()
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._key_limits = self._parse(settings.rate_limit)
        self._anonymous_limits = self._parse(settings.anonymous_rate_limit)
        self._streams: dict[str, int] = {}

    @staticmethod
    def _parse(spec: str | None) -> list[RateLimitItem]:
        return parse_many(spec) if spec else []

    # --- who is asking -----------------------------------------------------------------------

    async def identify(self, request: Request) -> Actor:
        """The key presented, or 401."""
        presented = _bearer(request)
        token = self.settings.admin_token
        if presented is None:
            if not token and self._keys is None:
                raise AuthenticationError("this route is disabled: start the gateway with LETHE_ADMIN_TOKEN set")
            raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'")
        if token and hmac.compare_digest(presented.encode(), token.encode()):
            return BOOTSTRAP_OPERATOR
        key = await self._lookup(presented)
        if key is None:
            raise AuthenticationError("invalid or revoked API key")
        return key.actor

    async def _lookup(self, secret: str) -> ApiKey | None:
        if self._keys is None:
            return None
        now = self._clock()
        digest = hash_key(secret)  # the cache holds no key in clear either
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            key = await asyncio.wait_for(asyncio.to_thread(self._keys.authenticate, secret), _LOOKUP_TIMEOUT_S)
        except Exception:  # the ledger is down or stalled: keys cannot be checked, nothing is let through
            raise ServiceUnavailableError("API keys cannot be checked right now", code="keys_unavailable") from None
        self._cache[digest] = (key, now + self.settings.key_cache_s)
        self._cache.move_to_end(digest)
        while len(self._cache) > _CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return key

    def forget_key(self, key_id: str) -> None:
        """Drop a revoked key from this replica's cache at once (other replicas: within key_cache_s)."""
        for digest in [d for d, (k, _) in self._cache.items() if k is not None and k.id == key_id]:
            del self._cache[digest]

    async def authorize(self, request: Request, requires: Requires) -> Actor | None:
        """The acting key if it may call this route (after its rate limit), else 401/403/429."""
        if requires.chat and self.settings.chat_auth == "none":
            # Open chat: an Authorization header is ignored (the openai SDK always sends one).
            self._admit(f"addr:{_client(request)}", self._anonymous_limits)
            return None
        actor = await self.identify(request)
        if actor.role not in requires.roles:
            raise PermissionDeniedError(
                f"this route needs the {requires.needed()} role; the key {actor.name!r} has the {actor.role.value} role"
            )
        self._admit(f"key:{actor.key_id}", self._key_limits)
        return actor

    def _admit(self, who: str, items: list[RateLimitItem]) -> None:
        for item in items:
            if not self._limiter.hit(item, who):
                reset = self._limiter.get_window_stats(item, who).reset_time
                raise RateLimitedError(
                    f"rate limit of {item} exceeded; retry later", retry_after_s=math.ceil(reset - time.time())
                )

    # --- what it may read ----------------------------------------------------------------------

    async def check_owner(self, actor: Actor | None, forget_id: str) -> None:
        """A requester key reads only the forget requests it filed; anything else is a 404, the same
        answer as for an id that does not exist (no oracle for other requesters' ids)."""
        if actor is None or actor.role is not Role.REQUESTER:
            return
        owner = None
        if self._keys is not None:
            try:
                owner = await asyncio.wait_for(asyncio.to_thread(self._keys.owner_of, forget_id), _LOOKUP_TIMEOUT_S)
            except Exception:
                raise ServiceUnavailableError(
                    "ownership cannot be checked right now", code="keys_unavailable"
                ) from None
        if owner != actor.key_id:
            raise NotFoundError(f"no forget request with id {forget_id!r}", param="forget_id")

    # --- concurrent chat requests --------------------------------------------------------------

    def open_stream(self, request: Request, actor: Actor | None) -> Callable[[], None]:
        """Count one chat request in flight for its key (or client address); 429 over the cap. Returns
        the release function (idempotent)."""
        if actor is not None:
            who, cap = f"key:{actor.key_id}", self.settings.max_streams_per_key
        else:
            who, cap = f"addr:{_client(request)}", self.settings.anonymous_max_streams
        if cap is None:
            return lambda: None
        if self._streams.get(who, 0) >= cap:
            raise RateLimitedError(
                f"at most {cap} chat requests in flight per key; wait for one to finish",
                retry_after_s=1,
                code="too_many_streams",
            )
        self._streams[who] = self._streams.get(who, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            left = self._streams.get(who, 1) - 1
            if left <= 0:
                self._streams.pop(who, None)
            else:
                self._streams[who] = left

        return release

    def streams_in_flight(self) -> int:
        return sum(self._streams.values())


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"
