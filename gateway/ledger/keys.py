"""API keys: made random, shown once, stored as a SHA-256 digest, each with one role; revocable.

Why a plain SHA-256 and not a password hash (bcrypt, argon2): a key is 32 random bytes (256 bits), so
its digest cannot be reversed by guessing, which is all a slow hash adds for low-entropy passwords; and
a fast, unsalted digest is a unique column the gateway looks a presented key up by, in one indexed
query, on every request (a slow hash there would itself be a way to tie up the gateway). A copy of the
ledger therefore gives no usable key.
"""

from __future__ import annotations

import builtins
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row

from gateway.ledger import schema as t
from gateway.ledger.actors import Actor, Role
from gateway.ledger.store import Ledger

# Every key starts with this, so a leaked one is recognisable (secret scanners, logs).
KEY_PREFIX = "lethe_"
# Characters of a key kept in clear to tell keys apart in listings (prefix + 6 of the random part).
_SHOWN = len(KEY_PREFIX) + 6
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$")
_MAX_KEY_CHARS = 128


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class ApiKey:
    """One key as stored (never the key itself)."""

    id: str
    name: str
    role: Role
    prefix: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def actor(self) -> Actor:
        return Actor(self.id, self.name, self.role)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role.value,
            "prefix": self.prefix,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # SQLite gives naive datetimes


def _key(row: Row[Any]) -> ApiKey:
    revoked = _utc(row.revoked_at) if row.revoked_at is not None else None
    return ApiKey(row.id, row.name, Role(row.role), row.prefix, _utc(row.created_at), row.created_by, revoked)


class KeyStore:
    """The API keys in the ledger's database; creation and revocation are audit events.

    >>> store = KeyStore(ledger)
    >>> key, secret = store.create("billing-app", Role.REQUESTER, actor="key:admin-token/LETHE_ADMIN_TOKEN")
    >>> store.authenticate(secret) == key
    True
    """

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def create(self, name: str, role: Role | str, *, actor: str) -> tuple[ApiKey, str]:
        """A new key: the record, and the key itself (returned this once; only its digest is kept)."""
        if not _NAME.match(name):
            raise ValueError("a key name is 1-64 letters, digits, spaces or . _ @ - and starts with a letter or digit")
        role = Role(role)
        secret = new_secret()
        key = ApiKey(
            id=f"k_{secrets.token_hex(6)}",
            name=name,
            role=role,
            prefix=secret[:_SHOWN],
            created_at=datetime.now(UTC),
            created_by=actor,
        )
        with self._ledger.engine.begin() as conn:
            conn.execute(
                insert(t.api_keys).values(
                    id=key.id,
                    name=key.name,
                    role=key.role.value,
                    key_hash=hash_key(secret),
                    prefix=key.prefix,
                    created_at=key.created_at,
                    created_by=key.created_by,
                    revoked_at=None,
                )
            )
            Ledger._audit(conn, actor, "key.created", key.id, {"name": key.name, "role": key.role.value})
        return key, secret

    def get(self, key_id: str) -> ApiKey | None:
        with self._ledger.engine.connect() as conn:
            row = conn.execute(select(t.api_keys).where(t.api_keys.c.id == key_id[:32])).first()
        return _key(row) if row is not None else None

    def list(self, *, include_revoked: bool = True) -> builtins.list[ApiKey]:
        q = select(t.api_keys).order_by(t.api_keys.c.created_at, t.api_keys.c.id)
        if not include_revoked:
            q = q.where(t.api_keys.c.revoked_at.is_(None))
        with self._ledger.engine.connect() as conn:
            return [_key(r) for r in conn.execute(q)]

    def revoke(self, key_id: str, *, actor: str) -> ApiKey | None:
        """Revoke a key (idempotent); None when there is no such key."""
        with self._ledger.engine.begin() as conn:
            row = conn.execute(select(t.api_keys).where(t.api_keys.c.id == key_id[:32])).first()
            if row is None:
                return None
            if row.revoked_at is None:
                conn.execute(update(t.api_keys).where(t.api_keys.c.id == row.id).values(revoked_at=datetime.now(UTC)))
                Ledger._audit(conn, actor, "key.revoked", row.id, {"name": row.name, "role": row.role})
            row = conn.execute(select(t.api_keys).where(t.api_keys.c.id == row.id)).one()
        return _key(row)

    def authenticate(self, secret: str) -> ApiKey | None:
        """The live key `secret` is, or None (unknown, malformed or revoked)."""
        if not secret.startswith(KEY_PREFIX) or len(secret) > _MAX_KEY_CHARS:
            return None  # not one of ours: no database round trip
        with self._ledger.engine.connect() as conn:
            row = conn.execute(select(t.api_keys).where(t.api_keys.c.key_hash == hash_key(secret))).first()
        if row is None or row.revoked_at is not None:
            return None
        return _key(row)

    def owner_of(self, forget_id: str) -> str | None:
        """The id of the key that filed a forget request (None: unknown request, or filed without a key)."""
        with self._ledger.engine.connect() as conn:
            owner: str | None = conn.execute(
                select(t.forget_requests.c.created_by).where(t.forget_requests.c.id == forget_id[:36])
            ).scalar()
        return owner
