"""API keys in the ledger (SQLite and PostgreSQL): only a hash is stored, revocation, audit events, the
acting key as owner and audit actor of what a request writes."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from gateway.ledger import schema as t
from gateway.ledger.actors import Actor, Role, acting_as, current_actor, resolve_actor
from gateway.ledger.keys import KEY_PREFIX, KeyStore, hash_key
from tests.gateway.ledger.conftest import make_pair


@pytest.fixture
def keys(ledger) -> KeyStore:
    return KeyStore(ledger)


def test_a_key_is_random_shown_once_and_stored_only_as_its_hash(keys, ledger):
    key, secret = keys.create("billing-app", Role.REQUESTER, actor="key:admin-token/LETHE_ADMIN_TOKEN")
    other, other_secret = keys.create("billing-app", "requester", actor="test")
    assert secret.startswith(KEY_PREFIX) and len(secret) >= len(KEY_PREFIX) + 43  # 32 random bytes
    assert secret != other_secret and key.id != other.id
    with ledger.engine.connect() as conn:
        rows = conn.execute(select(t.api_keys)).all()
    stored = " ".join(str(v) for row in rows for v in row)
    assert secret not in stored and other_secret not in stored
    assert {r.key_hash for r in rows} == {hash_key(secret), hash_key(other_secret)}
    assert key.prefix == secret[: len(key.prefix)] and len(key.prefix) < 16
    assert keys.authenticate(secret) == key and keys.authenticate(other_secret) == other
    assert keys.authenticate(secret + "x") is None and keys.authenticate("not-ours") is None
    assert keys.get(key.id) == key and {k.id for k in keys.list()} == {key.id, other.id}


def test_revocation_is_immediate_idempotent_and_audited(keys, ledger):
    key, secret = keys.create("old-app", Role.AUDITOR, actor="key:k_1/ops")
    revoked = keys.revoke(key.id, actor="key:k_1/ops")
    assert revoked is not None and revoked.revoked and keys.authenticate(secret) is None
    again = keys.revoke(key.id, actor="key:k_1/ops")
    assert again is not None and again.revoked_at == revoked.revoked_at
    assert keys.revoke("k_missing", actor="x") is None
    assert [k.id for k in keys.list(include_revoked=False)] == []
    events = ledger.list_audit(subject_id=key.id)
    assert [(e.kind, e.actor) for e in events] == [("key.created", "key:k_1/ops"), ("key.revoked", "key:k_1/ops")]
    assert events[0].details == {"name": "old-app", "role": "auditor"}


@pytest.mark.parametrize("name", ["", " lead", "a/b", "x" * 65, "tab\there"])
def test_key_names_are_bounded(keys, name):
    with pytest.raises(ValueError):
        keys.create(name, Role.CHAT, actor="test")


def test_unknown_roles_are_refused(keys):
    with pytest.raises(ValueError):
        keys.create("app", "root", actor="test")


def test_the_acting_key_owns_what_it_files_and_is_the_audit_actor(keys, ledger):
    requester = Actor("k_0000000000aa", "billing-app", Role.REQUESTER)
    entry, artifacts = make_pair(1)
    with acting_as(requester):
        ledger.add_forget(entry, artifacts)
        # A writer that names a specific actor keeps it; a generic one becomes the key.
        ledger.append_audit("forget.status", actor="job:j-1", subject_id=entry.forget_id)
        ledger.append_audit("forget.enforced", actor="authority", subject_id=entry.forget_id)
    other, _ = make_pair(2)
    ledger.add_forget(other, make_pair(2)[1])  # no key: filed by the bootstrap path, no owner
    assert keys.owner_of(entry.forget_id) == requester.key_id
    assert keys.owner_of(other.forget_id) is None and keys.owner_of("nope") is None
    actors = {e.kind: e.actor for e in ledger.list_audit(subject_id=entry.forget_id)}
    assert actors == {"forget.added": requester.label, "forget.status": "job:j-1", "forget.enforced": requester.label}
    assert ledger.list_audit(subject_id=other.forget_id)[0].actor == "operator"


def test_the_acting_key_follows_worker_threads_and_tasks_and_ends_with_its_block():
    actor = Actor("k_1", "app", Role.OPERATOR)

    async def later() -> str:
        await asyncio.sleep(0)
        return resolve_actor("authority")

    async def main() -> list[str]:
        with acting_as(actor):
            in_thread = await asyncio.to_thread(lambda: resolve_actor("operator"))
            in_task = await asyncio.create_task(later())
        return [in_thread, in_task, resolve_actor("operator")]

    assert asyncio.run(main()) == [actor.label, actor.label, "operator"]
    assert current_actor() is None
