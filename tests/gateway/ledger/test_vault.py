"""Forgotten content at rest: sealed per request, shredded for good, master keys rotated."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.forget.shredding import due_for_shredding
from gateway.guard.types import ForgetEntry
from gateway.ledger import ForgetStatus, Ledger
from gateway.ledger.vault import Vault, VaultError, encode_key, write_key_file
from tests.gateway.ledger.conftest import make_pair

CANARY = "Quillonbeck-Vantrees 7731"


def _files(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())


def _canary_entry(i: int = 1) -> ForgetEntry:
    entry, _ = make_pair(i)
    return ForgetEntry(entry.forget_id, f"Ada {CANARY}", texts=(f"{CANARY} lives on Skolegata.",), reason="gdpr")


def test_content_is_stored_only_sealed_and_opens_with_the_master_key(tmp_path):
    vault = Vault(Vault.new_key())
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}", vault=vault)
    entry, artifacts = _canary_entry(), make_pair(1)[1]
    ledger.add_forget(entry, artifacts, content_digest="hmac-sha256:00")
    record = ledger.get_forget(entry.forget_id)
    assert record.subject == entry.subject and record.payload["texts"] == list(entry.texts)
    assert record.counts == {"texts": 1, "qa": 0, "literals": 0} and record.content_digest == "hmac-sha256:00"
    ledger.close()
    assert CANARY.encode() not in _files(tmp_path)  # database, WAL and all
    with pytest.raises(VaultError):  # another master key opens nothing
        Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}", vault=Vault(Vault.new_key())).get_forget(entry.forget_id)


def test_shredding_destroys_the_key_and_keeps_enforcement_data(tmp_path):
    vault = Vault(Vault.new_key())
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}", vault=vault)
    entry, artifacts = _canary_entry(), make_pair(1)[1]
    ledger.add_forget(entry, artifacts)
    with ledger.engine.connect() as conn:
        sealed = conn.exec_driver_sql("SELECT key_id, wrapped_key, ciphertext FROM forget_payloads").one()
    at = ledger.shred(entry.forget_id, reason="test", actor="operator")
    assert at is not None and ledger.shred(entry.forget_id, reason="again", actor="operator") == at
    record = ledger.get_forget(entry.forget_id)
    assert record.shredded_at == at and record.subject is None and record.payload == {}
    assert record.counts["texts"] == 1  # what a certificate quotes survives
    assert ledger.load_artifacts() == [artifacts]  # the guard keeps enforcing it
    assert [e.kind for e in ledger.list_audit(subject_id=entry.forget_id)][-1] == "forget.shredded"
    ledger.close()
    files = _files(tmp_path)
    assert sealed.wrapped_key not in files and sealed.ciphertext not in files  # secure_delete + checkpoint
    with pytest.raises(VaultError):  # the wrapped key is gone; nothing else opens the ciphertext
        vault.unwrap(sealed.key_id, b"\x00" * 60, f"lethe:{entry.forget_id}".encode())


def test_dropping_semantic_rows_keeps_hashed_literals(tmp_path):
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    entry, artifacts = make_pair(2)
    ledger.add_forget(entry, artifacts)
    assert ledger.drop_semantic_rows(entry.forget_id)
    (stored,) = ledger.load_artifacts()
    assert stored.output_vectors == b"" and stored.literal_keys == artifacts.literal_keys


def test_master_key_rotation_rewraps_every_data_key(tmp_path):
    old, new = Vault.new_key(), Vault.new_key()
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger.open(url, vault=Vault(old))
    entry = _canary_entry()
    ledger.add_forget(entry, make_pair(1)[1])
    key = ledger.guard_hasher().key_id
    ledger.close()
    rotating = Ledger.open(url, vault=Vault(new, previous=[old]))
    assert rotating.rewrap() == 2  # the payload's data key and the guard's hash key
    rotating.close()
    rotated = Ledger.open(url, vault=Vault(new))  # the old key is gone
    assert rotated.get_forget(entry.forget_id).subject == entry.subject
    assert rotated.guard_hasher().key_id == key  # the guard's hashes stay valid across rotations
    with pytest.raises(VaultError):
        Ledger.open(url, vault=Vault(old)).get_forget(entry.forget_id)


def test_master_key_file_is_private_and_made_once(tmp_path):
    home = tmp_path / "home"
    first = Vault.from_environment(home, env={})
    again = Vault.from_environment(home, env={})
    path = home / "keys" / "master.key"
    assert first.key_id == again.key_id
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    key = Vault.new_key()
    from_env = Vault.from_environment(home, env={"LETHE_MASTER_KEY": encode_key(key)})
    assert from_env.key_id == Vault(key).key_id
    with pytest.raises(ValueError, match="32 bytes"):
        Vault.from_environment(home, env={"LETHE_MASTER_KEY": "c2hvcnQ="})
    write_key_file(path, [key, Vault.new_key()])  # rotation: the new key first, the old one after
    assert Vault.from_environment(home, env={}).key_id == Vault(key).key_id
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert os.environ.get("LETHE_MASTER_KEY")  # the suite's own key was not touched


def test_legacy_plaintext_is_sealed_on_open(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger.open(url)
    entry, artifacts = make_pair(4)
    ledger.add_forget(entry, artifacts)
    with ledger.engine.begin() as conn:  # what a ledger from before 0003 held
        conn.exec_driver_sql("DELETE FROM forget_payloads")
        conn.exec_driver_sql(
            "UPDATE forget_requests SET subject = ?, payload = ?",
            (f"Old {CANARY}", f'{{"texts": ["{CANARY}"], "qa": [], "literals": []}}'),
        )
    ledger.close()
    reopened = Ledger.open(url)
    record = reopened.get_forget(entry.forget_id)
    assert record.subject == f"Old {CANARY}" and record.payload["texts"] == [CANARY]
    with reopened.engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT subject, payload FROM forget_requests").one()
    assert row.subject is None and CANARY not in row.payload


def test_retention_policies_pick_what_is_due(tmp_path):
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    entry, artifacts = make_pair(5)
    ledger.add_forget(entry, artifacts)
    later = datetime.now(UTC) + timedelta(days=31)
    assert due_for_shredding(ledger, "retention", 30, None, now=later) == [entry.forget_id]
    assert due_for_shredding(ledger, "retention", 30, None) == []
    assert due_for_shredding(ledger, "never", 30, None, now=later) == []
    # `unlearned`: published, promoted, and the latest probe of the serving version found it clean.
    ledger.add_version("base", "/base", {}, parent_id=None)
    ledger.add_version("v1", "/v1", {}, parent_id="base")
    job = ledger.create_job("npo", [entry.forget_id])
    ledger.update_job(job.id, state="published", version_id="v1")
    ledger.set_forget_status([entry.forget_id], ForgetStatus.UNLEARNED)
    report = {"version": "v1", "leaking_forget_ids": []}
    assert due_for_shredding(ledger, "unlearned", 30, report) == []  # v1 is not serving yet
    ledger.set_serving("v1")
    assert due_for_shredding(ledger, "unlearned", 30, report) == [entry.forget_id]
    assert due_for_shredding(ledger, "unlearned", 30, {**report, "leaking_forget_ids": [entry.forget_id]}) == []
    assert due_for_shredding(ledger, "unlearned", 30, {**report, "version": "base"}) == []
    assert due_for_shredding(ledger, "unlearned", 30, None) == []


def test_lethe_vault_rewrap_rotates_the_key_file(tmp_path, monkeypatch, capsys):
    from gateway.cli.main import main

    home = tmp_path / "home"
    monkeypatch.setenv("LETHE_HOME", str(home))
    monkeypatch.delenv("LETHE_MASTER_KEY")
    old = Vault.from_environment(home, env={})
    ledger = Ledger.open(f"sqlite:///{home / 'ledger.db'}", vault=old)
    entry = _canary_entry()
    ledger.add_forget(entry, make_pair(1)[1])
    ledger.close()
    path = home / "keys" / "master.key"
    new = Vault.new_key()
    write_key_file(path, [new, _key_of(old)])  # the new key current, the old one still known
    assert main(["vault", "rewrap"]) == 0
    assert "re-wrapped 1 keys" in capsys.readouterr().out
    write_key_file(path, [new])  # the old key dropped
    assert Ledger.open(f"sqlite:///{home / 'ledger.db'}").get_forget(entry.forget_id).subject == entry.subject


def _key_of(vault: Vault) -> bytes:
    return vault._keys[vault.key_id]


def test_text_samples_of_older_jobs_and_manifests_are_redacted_by_the_migration(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger.open(url)
    old = {"after": {"forget": {"hit_rate": 0.5}, "samples": [[f"Where is {CANARY}?", f"{CANARY} is in Tromsø"]]}}
    job = ledger.create_job("npo", ["f-1"])
    ledger.update_job(job.id, state="published", metrics=old)
    ledger.add_version("v1", "/v1", {"metrics": old}, parent_id=None)
    with ledger.engine.begin() as conn:  # as a ledger from before 0004 would be
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0003_vault'")
    ledger.close()
    migrated = Ledger.open(url)
    assert migrated.get_job(job.id).metrics["after"]["samples"] == []
    assert migrated.get_version("v1").manifest["metrics"]["after"]["samples"] == []
    assert migrated.get_job(job.id).metrics["after"]["forget"] == {"hit_rate": 0.5}
