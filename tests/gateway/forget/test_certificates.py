"""Deletion certificates: built from a real SQLite ledger, signed with Ed25519, checked offline."""

from __future__ import annotations

import asyncio
import copy
import json
import stat

import pytest

from gateway.forget.authority import ForgetRecords
from gateway.forget.certificates import (
    CERTIFICATE_FORMAT,
    CertificateError,
    CertificateSigner,
    build_certificate,
    content_digest,
    verify_certificate,
)
from gateway.forget.service import ForgetService
from gateway.ledger import Ledger
from tests.gateway.ledger.conftest import make_pair


@pytest.fixture
def ledger(tmp_path):
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield ledger
    ledger.close()


@pytest.fixture
def signer(tmp_path):
    return CertificateSigner(tmp_path / "keys")


def unlearned(ledger: Ledger) -> tuple[str, str]:
    """A forget request taken out of the weights: job published v1 (child of base), v1 serves."""
    entry, artifacts = make_pair(7)
    ledger.add_forget(entry, artifacts)
    ledger.add_version("base", "/models/base", {"files": {"model.safetensors": "a" * 64}})
    ledger.set_serving("base", action="promote")
    job = ledger.create_job("npo", [entry.forget_id], {"steps": 20, "gates": {"forget_hit_rate_max": 0.2}})
    ledger.update_job(job.id, state="running")
    ledger.add_version("v1", "/versions/v1", {"files": {"model.safetensors": "b" * 64}}, parent_id="base", method="npo")
    ledger.update_job(job.id, state="published", version_id="v1", metrics={"after": {"forget": 0.0}})
    ledger.set_forget_status([entry.forget_id], "unlearned", actor=f"job:{job.id}")
    ledger.set_serving("v1", action="promote")
    return entry.forget_id, job.id


def test_certificate_of_an_unlearned_request(ledger):
    forget_id, job_id = unlearned(ledger)
    cert = build_certificate(ledger, forget_id)
    assert cert["format"] == CERTIFICATE_FORMAT and cert["issuer"].startswith("lethe")
    req = cert["forget_request"]
    assert req["id"] == forget_id and req["status"] == "unlearned" and req["reason"] == "gdpr"
    assert req["counts"] == {"texts": 0, "qa": 1, "literals": 1}
    # The requester can recompute the digest from their own copy of the request.
    assert req["content_digest"] == content_digest(ledger.get_forget(forget_id).body())
    assert cert["enforcement"]["enforced"] and cert["enforcement"]["index_version"] == 1
    weights = cert["weights"]
    assert weights["serving_version"] == "v1" and weights["serving_lineage"] == ["v1", "base"]
    assert weights["unlearned_in_serving_weights"]
    [job] = weights["unlearning_jobs"]
    assert job["job_id"] == job_id and job["state"] == "published" and job["in_serving_weights"]
    assert job["gates"] == {"forget_hit_rate_max": 0.2} and len(job["version_manifest_sha256"]) == 64
    kinds = [e["kind"] for e in cert["audit_trail"]]
    assert kinds[0] == "forget.added" and "job.created" in kinds and "version.added" in kinds
    assert kinds.count("version.serving") == 1  # v1's promotion; base's concerns no job of this request
    assert [e["id"] for e in cert["audit_trail"]] == sorted(e["id"] for e in cert["audit_trail"])
    assert "descend from version(s) v1" in cert["statement"]


def test_certificate_never_repeats_the_forgotten_content(ledger):
    forget_id, _ = unlearned(ledger)
    text = json.dumps(build_certificate(ledger, forget_id))
    record = ledger.get_forget(forget_id)
    for secret in [*record.payload["literals"], *(a for _, a in record.payload["qa"])]:
        assert secret not in text


def test_rollback_below_the_unlearned_version_is_stated(ledger):
    forget_id, _ = unlearned(ledger)
    ledger.set_serving("base", action="rollback")
    cert = build_certificate(ledger, forget_id)
    assert not cert["weights"]["unlearned_in_serving_weights"]
    assert not cert["weights"]["unlearning_jobs"][0]["in_serving_weights"]
    assert "the guard alone enforces it" in cert["statement"]


def test_probe_result_for_the_request(ledger):
    forget_id, _ = unlearned(ledger)
    report = {
        "at": "2999-01-01T00:00:00+00:00",
        "version": "v1",
        "leaking_forget_ids": [forget_id],
        "by_version": {"v1": {"leakage_ratio": 0.5}},
    }
    probe = build_certificate(ledger, forget_id, leakage=report)["raw_weights_probe"]
    assert probe == {
        "at": report["at"],
        "version": "v1",
        "probed": True,
        "leaked": True,
        "version_leakage_ratio": 0.5,
        "views": {},
    }
    earlier = {**report, "at": "2000-01-01T00:00:00+00:00"}  # before the request existed: not asked
    assert build_certificate(ledger, forget_id, leakage=earlier)["raw_weights_probe"]["probed"] is False


def test_the_certificate_reports_the_leakage_views_of_the_version(ledger):
    forget_id, job_id = unlearned(ledger)
    after = {"views": {"fill_blank": {"view": "fill_blank", "kind": "key_term", "n": 4, "leaks": 0, "rate": 0.0}}}
    ledger.update_job(job_id, metrics={"after": after})
    report = {
        "at": "2999-01-01T00:00:00+00:00",
        "version": "v1",
        "leaking_forget_ids": [],
        "leaking_forget_ids_by_view": {"yes_no": [forget_id], "fill_blank": []},
        "by_version": {
            "v1": {
                "leakage_ratio": 0.0,
                "views": {
                    "yes_no": {"n": 2, "leaks": 2, "rate": 1.0, "chance": 0.25},
                    "fill_blank": {"n": 2, "leaks": 0, "rate": 0.0, "chance": None},
                },
            }
        },
    }
    cert = build_certificate(ledger, forget_id, leakage=report)
    views = cert["raw_weights_probe"]["views"]
    assert views["yes_no"] == {"rate": 1.0, "chance": 0.25, "n": 2, "leaked": True}
    assert views["fill_blank"]["leaked"] is False
    assert cert["weights"]["unlearning_jobs"][0]["leakage_views"] == {
        "fill_blank": {"rate": 0.0, "chance": None, "n": 4}
    }
    assert "it leaked through: yes_no." in cert["statement"]


def test_unknown_request_has_no_certificate(ledger):
    assert build_certificate(ledger, "no-such-id") is None


def test_signature_round_trip_and_tampering(ledger, signer):
    forget_id, _ = unlearned(ledger)
    cert = signer.sign(build_certificate(ledger, forget_id))
    assert verify_certificate(cert, signer.public_pem)["forget_request"]["id"] == forget_id
    tampered = copy.deepcopy(cert)
    tampered["weights"]["unlearned_in_serving_weights"] = False
    with pytest.raises(CertificateError, match="altered"):
        verify_certificate(tampered, signer.public_pem)
    with pytest.raises(CertificateError, match="not a Lethe deletion certificate"):
        verify_certificate({"hello": 1}, signer.public_pem)
    unsigned = {k: v for k, v in cert.items() if k != "signature"}
    with pytest.raises(CertificateError, match="no Ed25519 signature"):
        verify_certificate(unsigned, signer.public_pem)


def test_key_is_kept_private_and_reused(tmp_path, signer, ledger):
    key_file = next((tmp_path / "keys").iterdir())
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = CertificateSigner(tmp_path / "keys")
    assert again.key_id == signer.key_id and again.public_pem == signer.public_pem
    other = CertificateSigner(tmp_path / "other-keys")
    forget_id, _ = unlearned(ledger)
    cert = signer.sign(build_certificate(ledger, forget_id))
    with pytest.raises(CertificateError, match="not by the key given"):
        verify_certificate(cert, other.public_pem)


class _Authority:
    """ForgetRecords behind the async calls the ingress makes (a Serve handle in production)."""

    def __init__(self, records: ForgetRecords, signer: CertificateSigner) -> None:
        self.records, self.signer = records, signer

    async def certificate(self, forget_id, actor=None):
        return self.records.certificate(self.signer, forget_id)

    async def certificate_key(self):
        return self.signer.public_key()

    async def audit(self, kind, subject_id, limit, offset):
        return self.records.audit(kind, subject_id, limit, offset)


def test_service_issues_audits_and_verifies(ledger, signer):
    from gateway.errors import NotFoundError

    forget_id, _ = unlearned(ledger)
    service = ForgetService(_Authority(ForgetRecords(ledger), signer), guard=None)
    cert = asyncio.run(service.certificate(forget_id))
    assert asyncio.run(service.verify_certificate(cert)).valid
    assert ledger.list_audit(kind="forget.certificate_issued", subject_id=forget_id)
    cert["statement"] = "Nothing happened."
    check = asyncio.run(service.verify_certificate(cert))
    assert not check.valid and "altered" in check.reason and check.forget_id == forget_id
    with pytest.raises(NotFoundError):
        asyncio.run(service.certificate("no-such-id"))


def test_audit_trail_newest_first_with_filters(ledger, signer):
    forget_id, _job_id = unlearned(ledger)
    service = ForgetService(_Authority(ForgetRecords(ledger), signer), guard=None)
    events = asyncio.run(service.audit(kind=None, subject_id=None, limit=100, offset=0)).data
    assert [e.id for e in events] == sorted((e.id for e in events), reverse=True)
    mine = asyncio.run(service.audit(kind=None, subject_id=forget_id, limit=100, offset=0)).data
    assert {e.kind for e in mine} == {"forget.added", "forget.status"} and all(e.subject_id == forget_id for e in mine)
    serving = asyncio.run(service.audit(kind="version.serving", subject_id=None, limit=1, offset=0)).data
    assert len(serving) == 1 and serving[0].subject_id == "v1"  # the latest promotion
    # An id no backend can store is an id no event has (not a database error).
    assert asyncio.run(service.audit(kind=None, subject_id="a\x00b", limit=10, offset=0)).data == []


def test_enforcement_time_is_the_acknowledgement_and_base_model_serves(ledger):
    entry, artifacts = make_pair(3)
    ledger.add_forget(entry, artifacts)
    base = ledger.add_version("base", "/models/base", {"base": True})  # registered, never promoted
    ledger.append_audit(
        "forget.enforced",
        actor="authority",
        subject_id=entry.forget_id,
        details={"enforced_at": "2026-11-27T12:00:00.500+00:00", "index_version": 1},
    )
    cert = build_certificate(ledger, entry.forget_id, serving=base)
    assert cert["enforcement"]["enforced_at"] == "2026-11-27T12:00:00.500+00:00"
    assert cert["enforcement"]["committed_at"] == ledger.get_forget(entry.forget_id).enforced_at.isoformat()
    assert cert["weights"]["serving_version"] == "base" and not cert["weights"]["unlearned_in_serving_weights"]
    assert "From 2026-11-27T12:00:00.500+00:00" in cert["statement"]
    assert "the guard alone enforces it" in cert["statement"]


# --- certificates that cannot overclaim, and carry no forgotten text ---------------------------------------


def test_nothing_of_the_request_or_its_evaluations_is_repeated(ledger):
    forget_id, job_id = unlearned(ledger)
    record = ledger.get_forget(forget_id)
    question, answer = record.payload["qa"][0]
    # A job row written before samples were scores-only: [forget prompt, raw model output].
    legacy = {"forget_leakage": 1.0, "samples": [[question, f"They live in {answer}."]]}
    ledger.update_job(job_id, metrics={"before": legacy, "after": legacy})
    text = json.dumps(build_certificate(ledger, forget_id))
    secrets = [record.subject, question, answer, *record.payload["literals"]]
    assert not [s for s in secrets if s and s in text]


def test_a_recorded_digest_and_the_shredding_time_are_stated(ledger, monkeypatch):
    import dataclasses
    from datetime import UTC, datetime

    forget_id, _ = unlearned(ledger)
    cert = build_certificate(ledger, forget_id)
    assert cert["forget_request"]["shredded_at"] is None
    shredded = datetime(2026, 12, 1, tzinfo=UTC)
    record = dataclasses.replace(
        ledger.get_forget(forget_id),
        subject=None,
        payload={},
        counts={"texts": 0, "qa": 1, "literals": 1},
        content_digest="hmac-sha256:abc",
        shredded_at=shredded,
    )
    monkeypatch.setattr(ledger, "get_forget", lambda fid: record if fid == forget_id else None)
    req = build_certificate(ledger, forget_id)["forget_request"]
    assert req["content_digest"] == "hmac-sha256:abc" and req["shredded_at"] == shredded.isoformat()
    assert req["counts"] == {"texts": 0, "qa": 1, "literals": 1}  # as filed, not the emptied payload


def test_the_guard_state_is_stated_and_a_guard_that_is_off_is_not_claimed(ledger):
    from gateway.forget.certificates import guard_state

    forget_id, _ = unlearned(ledger)
    on = build_certificate(ledger, forget_id, guard=guard_state(True, "refuse"))
    assert on["guard"]["enabled"] and on["guard"]["prompt_mode"] == "refuse"
    assert on["guard"]["thresholds"]["semantic_subject"] > 0 and "every prompt" in on["statement"]
    off = build_certificate(ledger, forget_id, guard=guard_state(False, "strict"))
    assert off["guard"]["enabled"] is False and off["guard"]["prompt_mode"] == "strict"
    assert "the guard is OFF" in off["statement"] and "every prompt" not in off["statement"]
    unknown = build_certificate(ledger, forget_id)
    assert unknown["guard"] is None and "was not given to this certificate" in unknown["statement"]


def test_gate_overrides_of_the_cited_jobs_are_stated(ledger):
    entry, artifacts = make_pair(8)
    ledger.add_forget(entry, artifacts)
    job = ledger.create_job("npo", [entry.forget_id], {"steps": 2, "gates": {"forget_hit_rate_max": 0.9}})
    cert = build_certificate(ledger, entry.forget_id)
    [row] = cert["weights"]["unlearning_jobs"]
    assert row["gate_overrides"] == {"forget_hit_rate_max": {"value": 0.9, "default": 0.2}}
    assert f"job {job.id} ran with forget_hit_rate_max=0.9 (default 0.2)" in cert["statement"]
    forget_id, _ = unlearned(ledger)  # its job overrode a gate with the default value: nothing to state
    assert build_certificate(ledger, forget_id)["weights"]["unlearning_jobs"][0]["gate_overrides"] == {}


def test_each_replicas_own_version_is_stated_and_one_on_other_weights_voids_the_claim(ledger):
    forget_id, _ = unlearned(ledger)
    both = [{"replica": "llm-0", "version": "v1"}, {"replica": "llm-1", "version": "v1", "verified": True}]
    cert = build_certificate(ledger, forget_id, replicas=both)
    assert [r["unlearned"] for r in cert["weights"]["replicas"]] == [True, True]
    assert cert["weights"]["unlearned_in_serving_weights"]
    assert "The weights every LLM replica serves at issue time (v1) descend" in cert["statement"]
    split = [{"replica": "llm-0", "version": "v1"}, {"replica": "llm-1", "version": "base"}]
    cert = build_certificate(ledger, forget_id, replicas=split)
    assert not cert["weights"]["unlearned_in_serving_weights"]
    assert cert["weights"]["replicas"][1] == {
        "replica": "llm-1",
        "version": "base",
        "verified": True,
        "unlearned": False,
    }
    assert "replica(s) llm-1 did not serve weights unlearned on this request" in cert["statement"]
    refusing = [{"replica": "llm-0", "version": "v1"}, {"replica": "llm-1", "version": "base", "verified": False}]
    assert not build_certificate(ledger, forget_id, replicas=refusing)["weights"]["unlearned_in_serving_weights"]
    unknown = build_certificate(ledger, forget_id)  # the replicas did not answer: said so
    assert unknown["weights"]["replicas"] is None and "were not available" in unknown["statement"]


def test_an_imported_version_does_not_descend_from_an_unlearned_one(ledger, tmp_path):
    from gateway.weights.store import import_directory, proven_parent
    from tests.gateway.weights.test_store import write_model

    forget_id, _ = unlearned(ledger)  # v1, unlearned on this request, serves
    base = write_model(tmp_path / "base")
    other = write_model(tmp_path / "elsewhere")  # e.g. the base model again, or weights made anywhere
    parent = proven_parent(ledger, other)
    vid, path, manifest = import_directory(other, tmp_path / "versions", base, parent_version=parent)
    ledger.add_version(vid, str(path), manifest, parent_id=parent, method="import")
    ledger.set_serving(vid, action="promote")
    cert = build_certificate(ledger, forget_id, replicas=[{"replica": "llm-0", "version": vid}])
    assert parent is None and cert["weights"]["serving_lineage"] == [vid]
    assert not cert["weights"]["unlearned_in_serving_weights"]
    assert not cert["weights"]["unlearning_jobs"][0]["in_serving_weights"]
    assert "No weights unlearned on this request serve at issue time" in cert["statement"]


def test_the_signing_key_is_private_whatever_the_umask_and_its_creation_is_fsynced(tmp_path, monkeypatch):
    import os

    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    old = os.umask(0o000)
    try:
        CertificateSigner(tmp_path / "keys")
    finally:
        os.umask(old)
    keys = tmp_path / "keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert [(p.name, stat.S_IMODE(p.stat().st_mode)) for p in keys.iterdir()] == [("certificate-ed25519.pem", 0o600)]
    assert synced == [str(keys)]  # the key's name is durable before anything is signed with it
