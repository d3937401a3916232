"""VersionsService, the ingress facade of the swap controller: wire types, domain errors as 404/409/422,
failures as 503."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import NotFoundError, ServiceUnavailableError, UnprocessableError
from gateway.weights.controller import SwapConflictError, SwapFailedError, VersionNotFoundError
from gateway.weights.protocol import ImportRequest, PromoteRequest
from gateway.weights.service import ConflictError, VersionsService
from gateway.weights.store import VersionInvalidError
from tests.support.remote import DeadReplicaError, RemoteTaskError, ScriptedRemote


def version_row(version_id: str, *, serving: bool = False, method: str | None = "npo") -> dict[str, Any]:
    return {
        "id": version_id,
        "object": "model.version",
        "parent": "base",
        "method": method,
        "created": "2026-11-27T12:00:00+00:00",
        "path": f"/home/versions/{version_id}",
        "serving": serving,
        "forget_ids": ["f-1"],
        "metrics": {"before": None, "after": None},
    }


def swap_report(kind: str, version: str, previous: str) -> dict[str, Any]:
    step = {
        "replica": "llm-0",
        "version": version,
        "previous": previous,
        "drain_s": 0.1,
        "load_s": 1.0,
        "smoke_s": 0.2,
        "total_s": 1.3,
        "smoke_answer": "Paris",
    }
    return {"kind": kind, "version": version, "previous": previous, "seconds": 1.3, "replicas": [step]}


class FakeVersions(ScriptedRemote):
    """The controller's calls (VersionsAPI): v1 serves, v2 is published, no probe has run yet."""

    def __init__(self) -> None:
        super().__init__()
        self.report: dict[str, Any] | None = None

    async def list(self) -> dict[str, Any]:
        return await self.answer(
            "list",
            (),
            {
                "serving": "v1",
                "swapping": False,
                "data": [version_row("v1", serving=True), version_row("v2")],
                "replicas": [{"replica": "llm-0", "version": "v1"}],
            },
        )

    async def history(self, limit: int) -> list[dict[str, Any]]:
        return await self.answer("history", (limit,), [{"event": "version.serving", "version": "v1"}])

    async def promote(self, version_id: str, actor: str) -> dict[str, Any]:
        return await self.answer("promote", (version_id, actor), swap_report("promote", version_id, "v1"))

    async def rollback(self, actor: str) -> dict[str, Any]:
        return await self.answer("rollback", (actor,), swap_report("rollback", "base", "v1"))

    async def import_version(self, path: str, actor: str, note: str | None) -> dict[str, Any]:
        return await self.answer("import_version", (path, actor, note), version_row("v3", method="import"))

    async def leakage(self) -> dict[str, Any] | None:
        return await self.answer("leakage", (), self.report)

    async def run_probe(self) -> dict[str, Any]:
        self.report = {"object": "leakage.report", "version": "v1", "by_version": {}}
        return await self.answer("run_probe", (), self.report)


@pytest.fixture
def versions() -> FakeVersions:
    return FakeVersions()


@pytest.fixture
def service(versions) -> VersionsService:
    return VersionsService(versions, timeout_s=0.2)


async def test_reads_and_swaps_return_wire_types_on_behalf_of_the_operator(service, versions):
    listed = await service.list()
    assert listed.serving == "v1" and [v.id for v in listed.data] == ["v1", "v2"] and listed.data[0].serving
    assert listed.replicas[0].version == "v1"
    report = await service.promote(PromoteRequest(version="v2"))
    assert report.object == "model.swap" and (report.kind, report.version, report.previous) == ("promote", "v2", "v1")
    assert report.replicas[0].smoke_answer == "Paris"
    assert (await service.rollback()).version == "base"
    imported = await service.import_version(ImportRequest(path="/tmp/model", note="from the lab"))
    assert imported.id == "v3" and imported.method == "import"
    assert await service.history(5) == [{"event": "version.serving", "version": "v1"}]
    assert versions.calls[1:] == [
        ("promote", ("v2", "operator")),
        ("rollback", ("operator",)),
        ("import_version", ("/tmp/model", "operator", "from the lab")),
        ("history", (5,)),
    ]


async def test_leakage_before_any_probe_is_a_404_then_the_report(service):
    with pytest.raises(NotFoundError) as err:
        await service.leakage()
    assert err.value.status == 404 and "no leakage probe has run yet" in err.value.message
    report = await service.run_probe()
    assert await service.leakage() == report


@pytest.mark.parametrize(
    ("failure", "kind", "status", "code"),
    [
        (VersionNotFoundError("v9"), NotFoundError, 404, "not_found"),
        (VersionInvalidError("manifest checksum mismatch"), UnprocessableError, 422, "version_invalid"),
        (SwapConflictError("another swap is running"), ConflictError, 409, "swap_conflict"),
        (SwapFailedError("llm-0 failed its smoke test; still serving v1"), ConflictError, 409, "swap_failed"),
    ],
)
async def test_controller_errors_map_to_their_status_and_code(service, versions, failure, kind, status, code):
    for raised in (failure, RemoteTaskError(failure)):  # in-process, or re-raised by the remote call
        versions.failure = raised
        with pytest.raises(kind) as err:
            await service.promote(PromoteRequest(version="v9"))
        assert (err.value.status, err.value.code) == (status, code)


async def test_the_errors_say_what_went_wrong(service, versions):
    versions.failure = VersionNotFoundError("v9")
    with pytest.raises(NotFoundError) as err:
        await service.promote(PromoteRequest(version="v9"))
    assert err.value.message == "no weight version 'v9'" and err.value.param == "version"
    versions.failure = VersionInvalidError("manifest checksum mismatch")
    with pytest.raises(UnprocessableError) as invalid:
        await service.import_version(ImportRequest(path="/tmp/model"))
    assert invalid.value.message == "version refused: manifest checksum mismatch"


async def test_a_controller_that_does_not_answer_is_a_503(service, versions):
    versions.hang = True
    with pytest.raises(ServiceUnavailableError) as err:
        await service.rollback()
    assert err.value.status == 503 and err.value.code == "versions_unavailable"
    assert "version controller did not answer within 0.2 s" in err.value.message


async def test_a_dead_controller_is_a_503_naming_the_failure(service, versions):
    versions.failure = DeadReplicaError("the actor died")
    with pytest.raises(ServiceUnavailableError) as err:
        await service.list()
    assert err.value.status == 503 and err.value.code == "versions_unavailable"
    assert "version controller is unavailable: DeadReplicaError" in err.value.message
