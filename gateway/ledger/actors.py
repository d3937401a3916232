"""Who the ledger writes for: the roles an API key can hold, the acting key of a request, and how an
audit event's actor is chosen from it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """What an API key may do (each key has exactly one role)."""

    REQUESTER = "requester"  # file forget requests; read the status and certificate of its own
    AUDITOR = "auditor"  # read requests, the audit trail, certificates, leakage, versions
    OPERATOR = "operator"  # everything an auditor reads, plus jobs, versions, swaps, import, keys
    CHAT = "chat"  # the OpenAI chat routes, when `server.chat_auth` is `keys`


@dataclass(frozen=True)
class Actor:
    """The key a request acts as; it travels with the calls one deployment makes to another.

    >>> Actor("k_3f9a1c2b7d40", "billing-app", Role.REQUESTER).label
    'key:k_3f9a1c2b7d40/billing-app'
    """

    key_id: str
    name: str
    role: Role

    @property
    def label(self) -> str:
        """What the audit trail records as the actor: the key's id and name (never the key itself)."""
        return f"key:{self.key_id}/{self.name}"


# `LETHE_ADMIN_TOKEN`: the operator that exists before any key does.
BOOTSTRAP_OPERATOR = Actor("admin-token", "LETHE_ADMIN_TOKEN", Role.OPERATOR)

# Set for the duration of one request's work in a deployment; asyncio tasks and `asyncio.to_thread`
# copy it, so a ledger write made on a worker thread for that request still sees it.
_acting: ContextVar[Actor | None] = ContextVar("lethe_acting_key", default=None)

# The actor names writers use when they only know that "someone with access" asked. Inside a
# request they become that request's key; a specific actor (`job:<id>`, `system`) is kept as is.
_GENERIC_ACTORS = frozenset({"operator", "authority"})


@contextlib.contextmanager
def acting_as(actor: Actor | None) -> Iterator[None]:
    """Attribute the ledger writes made inside this block (and the tasks it starts) to `actor`."""
    token = _acting.set(actor)
    try:
        yield
    finally:
        _acting.reset(token)


def current_actor() -> Actor | None:
    return _acting.get()


def resolve_actor(actor: str) -> str:
    """The actor an audit event records: the acting key in place of a generic name."""
    acting = _acting.get()
    return acting.label if acting is not None and actor in _GENERIC_ACTORS else actor
