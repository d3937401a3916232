"""ForgetService, the ingress facade of the forget authority: wire types, not-found, remote failures as 503/422."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import NotFoundError, ServiceUnavailableError, UnprocessableError
from gateway.forget.certificates import CERTIFICATE_FORMAT, CertificateSigner
from gateway.forget.protocol import ForgetRequest
from gateway.forget.service import ForgetService
from gateway.guard.artifacts import build_artifacts
from gateway.guard.index import ForgetIndex
from gateway.guard.types import ForgetEntry
from tests.support.fakes import StaticGuard
from tests.support.remote import DeadReplicaError, RemoteTaskError, ScriptedRemote

PHONE = "+47 912 33 457"


def status_row(forget_id: str, status: str = "enforced") -> dict[str, Any]:
    return {
        "id": forget_id,
        "status": status,
        "has_subject": True,
        "reason": "gdpr",
        "action": "block",
        "index_version": 3,
        "created_at": "2026-11-27T12:00:00+00:00",
        "enforced_at": "2026-11-27T12:00:00.400+00:00",
        "counts": {"texts": 0, "qa": 1, "literals": 1},
    }


class FakeAuthority(ScriptedRemote):
    """The authority's calls (ForgetAuthorityAPI) over two stored requests and a real signing key."""

    def __init__(self, signer: CertificateSigner) -> None:
        super().__init__()
        self.signer = signer
        self.rows = {"f-1": status_row("f-1"), "f-2": status_row("f-2", "unlearned")}

    async def add(self, payload: dict[str, Any], actor: Any = None) -> dict[str, Any]:
        return await self.answer(
            "add",
            (payload,),
            {
                "id": "f-3",
                "status": "enforced",
                "index_version": 4,
                "enforced_at": "2026-11-27T12:01:00.000+00:00",
                "content_digest_salt": "c2FsdHNhbHRzYWx0c2FsdA==",
            },
        )

    async def get(self, forget_id: str) -> dict[str, Any] | None:
        return await self.answer("get", (forget_id,), self.rows.get(forget_id))

    async def list(self, status: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        rows = [r for r in self.rows.values() if status is None or r["status"] == status]
        return await self.answer("list", (status, limit, offset), rows[offset : offset + limit])

    async def certificate(self, forget_id: str, actor: Any = None) -> dict[str, Any] | None:
        body = {"format": CERTIFICATE_FORMAT, "forget_request": {"id": forget_id}, "statement": "Enforced."}
        return await self.answer(
            "certificate", (forget_id,), self.signer.sign(body) if forget_id in self.rows else None
        )

    async def certificate_key(self) -> dict[str, str]:
        return await self.answer("certificate_key", (), self.signer.public_key())

    async def audit(self, kind: str | None, subject_id: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        event = {
            "id": 7,
            "at": "2026-11-27T12:00:00+00:00",
            "actor": "operator",
            "kind": "forget.added",
            "subject_id": "f-1",
            "details": {"index_version": 3},
        }
        return await self.answer("audit", (kind, subject_id, limit, offset), [event])


@pytest.fixture
def authority(tmp_path) -> FakeAuthority:
    return FakeAuthority(CertificateSigner(tmp_path / "keys"))


@pytest.fixture
def service(authority) -> ForgetService:
    return ForgetService(authority, guard=StaticGuard(None), timeout_s=0.2)


async def test_submit_sends_the_request_and_returns_the_acknowledgement(service, authority):
    accepted = await service.submit(ForgetRequest(subject="Ingrid Solvang", literals=[PHONE]))
    assert (accepted.id, accepted.status, accepted.index_version) == ("f-3", "enforced", 4)
    assert accepted.enforced_at == "2026-11-27T12:01:00.000+00:00"
    [(call, (payload,))] = authority.calls
    assert call == "add" and payload["subject"] == "Ingrid Solvang" and payload["literals"] == [PHONE]


async def test_an_empty_request_is_refused_before_the_authority(service, authority):
    with pytest.raises(UnprocessableError) as err:
        await service.submit(ForgetRequest(subject="Ingrid Solvang"))
    assert err.value.status == 422 and err.value.param == "texts"
    assert authority.calls == []


async def test_an_authority_that_does_not_answer_is_a_503_that_says_the_request_may_still_hold(service, authority):
    authority.hang = True
    with pytest.raises(ServiceUnavailableError) as err:
        await service.submit(ForgetRequest(literals=[PHONE]))
    assert err.value.status == 503 and err.value.code == "authority_unavailable"
    assert "did not answer within 0.2 s" in err.value.message and "check GET /v1/forget" in err.value.message


async def test_a_dead_authority_is_a_503_naming_the_failure(service, authority):
    authority.failure = DeadReplicaError("the actor died")
    with pytest.raises(ServiceUnavailableError) as err:
        await service.get("f-1")
    assert err.value.status == 503 and err.value.code == "authority_unavailable"
    assert "forget authority is unavailable: DeadReplicaError" in err.value.message


@pytest.mark.parametrize(
    "failure", [ValueError("texts[0] is too long"), RemoteTaskError(ValueError("texts[0] is too long"))]
)
async def test_content_the_authority_refuses_is_a_422(service, authority, failure):
    authority.failure = failure  # raised in the authority, wrapped or not by the remote call
    with pytest.raises(UnprocessableError) as err:
        await service.submit(ForgetRequest(texts=["x" * 10]))
    assert err.value.status == 422 and err.value.message == "texts[0] is too long"


async def test_get_and_list_return_wire_types_and_an_unknown_id_is_a_404(service, authority):
    status = await service.get("f-2")
    assert status.id == "f-2" and status.status == "unlearned" and status.counts == {"texts": 0, "qa": 1, "literals": 1}
    listed = await service.list(status="enforced", limit=10, offset=0)
    assert listed.object == "list" and [s.id for s in listed.data] == ["f-1"]
    assert authority.calls[-1] == ("list", ("enforced", 10, 0))
    with pytest.raises(NotFoundError) as err:
        await service.get("nope")
    assert err.value.status == 404 and err.value.param == "forget_id" and "'nope'" in err.value.message


async def test_certificates_are_passed_through_verified_and_a_missing_one_is_a_404(service):
    cert = await service.certificate("f-1")
    key = await service.certificate_key()
    assert cert["signature"]["key_id"] == key.key_id and key.algorithm == "ed25519"
    check = await service.verify_certificate(cert)
    assert check.valid and check.forget_id == "f-1" and check.key_id == key.key_id
    altered = await service.verify_certificate({**cert, "statement": "Nothing happened."})
    assert not altered.valid and "altered" in (altered.reason or "") and altered.forget_id == "f-1"
    # Not a certificate at all: invalid, and no forget id to report.
    junk = await service.verify_certificate({"forget_request": "f-1"})
    assert not junk.valid and junk.forget_id is None
    with pytest.raises(NotFoundError):
        await service.certificate("nope")


async def test_audit_events_become_wire_events(service, authority):
    events = await service.audit(kind="forget.added", subject_id="f-1", limit=5, offset=0)
    assert [(e.id, e.kind, e.subject_id, e.details) for e in events.data] == [
        (7, "forget.added", "f-1", {"index_version": 3})
    ]
    assert authority.calls == [("audit", ("forget.added", "f-1", 5, 0))]


async def test_check_runs_the_local_guard_and_refuses_when_out_of_service(authority, embedder):
    entry = ForgetEntry("f-1", "Ingrid Solvang", literals=(PHONE,), reason="gdpr")
    guard = StaticGuard(ForgetIndex.empty(embedder).with_entries([build_artifacts(entry, embedder)], version=7))
    service = ForgetService(authority, guard=guard)
    result = await service.check(f"Her number is {PHONE}.")
    assert result.match and result.index_version == 7
    assert ("f-1", "literal") in {(m.forget_id, m.kind) for m in result.matches}
    assert len({(m.forget_id, m.kind) for m in result.matches}) == len(result.matches)  # best score per kind
    assert not (await service.check("The weather is mild today.")).match
    assert authority.calls == []  # checks never leave the replica
    guard.reason = "this replica has not reached the forget-index authority for 20 s"
    with pytest.raises(ServiceUnavailableError) as err:
        await service.check(f"Her number is {PHONE}.")
    assert err.value.status == 503 and err.value.code == "index_unavailable" and "20 s" in err.value.message
