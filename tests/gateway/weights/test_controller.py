"""The rolling-swap controller against a fake fleet (the real one is tested end to end)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import torch

from gateway.ledger import Ledger
from gateway.weights.controller import SwapConflictError, SwapController, SwapFailedError, VersionNotFoundError
from gateway.weights.store import VersionInvalidError, model_version
from tests.gateway.weights.test_store import write_model


class FakeFleet:
    """Replicas as dicts; `fail_on` makes one replica's swap fail (it keeps its weights)."""

    def __init__(self, base: Path, n: int = 2) -> None:
        self.replicas = {
            f"llm-{i}": {"replica": f"llm-{i}", "version": model_version(base), "path": str(base)} for i in range(n)
        }
        self.fail_on: str | None = None
        self.calls: list[tuple[str, str]] = []
        self.gate: asyncio.Event | None = None

    async def states(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.replicas.values()]

    async def swap(self, replica: str, path: str, version: str) -> dict[str, Any]:
        self.calls.append((replica, version))
        if self.gate is not None:
            await self.gate.wait()
        if replica == self.fail_on and path != self.replicas[replica]["path"]:
            raise RuntimeError(f"replica {replica}: smoke test failed")
        previous = self.replicas[replica]["version"]
        self.replicas[replica].update(version=version, path=path)
        return {
            "replica": replica,
            "version": version,
            "previous": previous,
            "drain_s": 0.0,
            "load_s": 0.0,
            "smoke_s": 0.0,
            "total_s": 0.0,
            "smoke_answer": "Paris",
        }


@pytest.fixture
def setup(tmp_path):
    base = write_model(tmp_path / "base")
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    fleet = FakeFleet(base)
    results: list[str] = []
    from gateway.weights.controller import SwapHooks

    controller = SwapController(
        ledger,
        fleet,
        base_dir=base,
        versions_dir=tmp_path / "versions",
        hooks=SwapHooks(on_result=lambda r, s, v: results.append(r)),
    )
    yield controller, fleet, ledger, tmp_path, results
    ledger.close()


async def imported(controller, tmp_path, name: str) -> str:
    src = write_model(
        tmp_path / name,
        tensors={
            "model.embed_tokens.weight": torch.full((16, 8), float(len(name))),
            "model.norm.weight": torch.ones(8),
        },
    )
    return (await controller.import_version(str(src)))["id"]


async def test_promote_swaps_every_replica_in_order_and_persists(setup):
    controller, fleet, ledger, tmp, results = setup
    base_id = controller.serving().id
    vid = await imported(controller, tmp, "v1")
    report = await controller.promote(vid)
    assert [c for c in fleet.calls] == [("llm-0", vid), ("llm-1", vid)]
    assert report["previous"] == base_id and report["version"] == vid
    assert ledger.serving_version().id == vid
    listing = await controller.list()
    assert listing["serving"] == vid and {r["version"] for r in listing["replicas"]} == {vid}
    assert results == ["ok"]


async def test_failure_on_the_second_replica_rolls_the_first_back(setup):
    controller, fleet, _ledger, tmp, results = setup
    base_id = controller.serving().id
    vid = await imported(controller, tmp, "v1")
    fleet.fail_on = "llm-1"
    with pytest.raises(SwapFailedError, match="failed on llm-1: replica llm-1: smoke test failed; rolled back llm-0"):
        await controller.promote(vid)
    assert {r["version"] for r in fleet.replicas.values()} == {base_id}
    assert controller.serving().id == base_id
    event = controller.history()[0]
    assert event["event"] == "version.swap_failed" and event["failed_replica"] == "llm-1"
    assert event["rolled_back"] == ["llm-0"] and "smoke test failed" in event["reason"]
    assert results == ["rolled_back"]


async def test_corrupted_version_is_refused_before_any_replica_changes(setup):
    controller, fleet, ledger, tmp, results = setup
    vid = await imported(controller, tmp, "v1")
    weights = Path(ledger.get_version(vid).path) / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(VersionInvalidError, match="checksum mismatch"):
        await controller.promote(vid)
    assert fleet.calls == []
    assert controller.history()[0]["event"] == "version.swap_refused"
    assert results == ["refused"]


async def test_rollback_returns_to_the_previous_serving_version(setup):
    controller, fleet, _ledger, tmp, _ = setup
    base_id = controller.serving().id
    with pytest.raises(SwapConflictError, match="no previous serving version"):
        await controller.rollback()
    v1 = await imported(controller, tmp, "v1")
    v2 = await imported(controller, tmp, "v22")
    await controller.promote(v1)
    await controller.promote(v2)
    assert (await controller.rollback())["version"] == v1
    assert {r["version"] for r in fleet.replicas.values()} == {v1}
    assert (await controller.rollback())["version"] == base_id  # v1 had been promoted over the base


async def test_unknown_version_and_concurrent_swaps_are_refused(setup):
    controller, fleet, _ledger, tmp, _ = setup
    with pytest.raises(VersionNotFoundError):
        await controller.promote("v-nope")
    vid = await imported(controller, tmp, "v1")
    fleet.gate = asyncio.Event()
    first = asyncio.create_task(controller.promote(vid))
    await asyncio.sleep(0.05)
    with pytest.raises(SwapConflictError, match="another swap is in progress"):
        await controller.promote(vid)
    fleet.gate.set()
    await first


async def test_reconcile_brings_a_stale_replica_to_the_serving_version(setup):
    controller, fleet, _ledger, tmp, _ = setup
    vid = await imported(controller, tmp, "v1")
    await controller.promote(vid)
    base = controller._base_dir
    fleet.replicas["llm-1"].update(version=model_version(base), path=str(base))  # restarted on the old pointer
    await controller.reconcile()
    assert fleet.replicas["llm-1"]["version"] == vid


async def test_an_import_starts_its_own_lineage_unless_it_holds_a_versions_exact_weights(setup):
    import json
    import shutil

    controller, _fleet, ledger, tmp, _ = setup
    first = await imported(controller, tmp, "v1")
    await controller.promote(first)
    # Not the serving version's child: nothing proves these weights came from it.
    other = await imported(controller, tmp, "v22")
    assert ledger.get_version(other).parent_id is None
    assert ledger.list_audit(kind="version.imported", subject_id=other)[0].details["parent"] is None
    assert ledger.get_version(other).manifest["extra"]["lineage"] == "own"

    # A copy of a published version (its manifest names it, its weights are byte for byte the same).
    copy = tmp / "copy"
    shutil.copytree(ledger.get_version(first).path, copy)
    again = (await controller.import_version(str(copy)))["id"]
    assert ledger.get_version(again).parent_id == first
    assert ledger.get_version(again).manifest["extra"]["lineage"] == "proven"

    # The same manifest beside other weights (say, the base model's) proves nothing.
    forged = write_model(tmp / "forged")
    shutil.copy(copy / "manifest.json", forged / "manifest.json")
    assert ledger.get_version((await controller.import_version(str(forged)))["id"]).parent_id is None
    # Nor does a manifest that names a parent and copies its recorded digests.
    claims = json.loads((copy / "manifest.json").read_text())
    claims.update(version_id="v-elsewhere", parent_version=first)
    (forged / "manifest.json").write_text(json.dumps(claims))
    assert ledger.get_version((await controller.import_version(str(forged)))["id"]).parent_id is None


async def test_an_import_is_private_and_its_rename_is_fsynced(setup, monkeypatch):
    import os
    import stat

    controller, _fleet, ledger, tmp, _ = setup
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    vid = await imported(controller, tmp, "v1")
    path = Path(ledger.get_version(vid).path)
    paths = [path.parent, path, *path.rglob("*")]
    assert {str(p): stat.S_IMODE(p.stat().st_mode) for p in paths} == {
        str(p): 0o700 if p.is_dir() else 0o600 for p in paths
    }
    assert synced[-1] == str(path.parent)  # after the rename that publishes it


async def test_an_unverified_replica_is_swapped_only_onto_a_version_that_verifies(setup):
    controller, fleet, ledger, tmp, _ = setup
    vid = await imported(controller, tmp, "v1")
    await controller.promote(vid)
    fleet.replicas["llm-1"]["verified"] = False  # it refused the serving version at start
    listing = await controller.list()
    assert {r["replica"]: r["verified"] for r in listing["replicas"]} == {"llm-0": True, "llm-1": False}

    weights = Path(ledger.get_version(vid).path) / "model.safetensors"
    original = weights.read_bytes()
    weights.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))  # tampered
    fleet.calls.clear()
    assert await controller.reconcile() == [] and fleet.calls == []  # never onto weights that fail their checks

    weights.write_bytes(original)  # repaired: the refusing replica is swapped (and so made ready) again
    await controller.reconcile()
    assert fleet.calls == [("llm-1", vid)]
