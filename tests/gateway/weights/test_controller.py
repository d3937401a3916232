"""The rolling-swap controller against a fake fleet (the real one is tested end to end)."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import torch

from gateway.ledger import Ledger
from gateway.weights.controller import SwapConflictError, SwapController, SwapFailedError, VersionNotFoundError
from gateway.weights.store import VersionInvalidError, model_version
from tests.gateway.weights.test_store import write_model


class FakeFleet:
    """Replicas as dicts; `fail_on` makes one replica's smoke test fail (it restores its weights). Staging
    hashes the weight files against the digests the controller gives, as a replica does (`digests` keeps them).

    Every step lands in `events` as (time, step, replica): stage/staged, drain (closed), drained,
    loaded, smoke_end, failed, called_off; `stage_s`, `load_s`, `smoke_s` and `drain_s` (per replica)
    make the steps take time. Replicas get their own core unless `devices` says otherwise.
    """

    def __init__(self, base: Path, n: int = 2) -> None:
        self.replicas = {
            f"llm-{i}": {
                "replica": f"llm-{i}",
                "version": model_version(base),
                "path": str(base),
                "devices": [f"cpu:{i}"],
            }
            for i in range(n)
        }
        self.fail_on: str | None = None
        self.calls: list[tuple[str, str]] = []
        self.gate: asyncio.Event | None = None
        self.events: list[tuple[float, str, str]] = []
        self.stage_s = self.load_s = self.smoke_s = 0.0
        self.drain_s: dict[str, float] = {}
        self.staged: dict[str, str] = {}
        self.stage_fail: str | None = None
        self.discarded: list[str] = []
        self.digests: list[dict[str, str] | None] = []
        self._tickets: dict[str, dict[str, Any]] = {}

    def _log(self, step: str, replica: str) -> None:
        self.events.append((time.monotonic(), step, replica))

    def at(self, step: str, replica: str) -> float:
        return next(t for t, s, r in self.events if s == step and r == replica)

    def _ticket(self, ticket: str) -> dict[str, Any]:
        return self._tickets.setdefault(
            ticket, {"drained": asyncio.Event(), "loaded": asyncio.Event(), "go": asyncio.Event(), "load": True}
        )

    async def states(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.replicas.values()]

    async def stage(
        self, replica: str, path: str, version: str, digests: dict[str, str] | None = None
    ) -> dict[str, Any]:
        self._log("stage", replica)
        self.digests.append(digests)
        await asyncio.sleep(self.stage_s)
        mismatch = any(
            hashlib.sha256((Path(path) / n).read_bytes()).hexdigest() != d for n, d in (digests or {}).items()
        )
        if replica == self.stage_fail or mismatch:
            raise RuntimeError(f"replica {replica}: checksum mismatch; weights not changed")
        self.staged[replica] = path
        self._log("staged", replica)
        return {"replica": replica, "version": version, "stage_s": self.stage_s}

    async def discard_staged(self, replica: str) -> None:
        self.staged.pop(replica, None)
        self.discarded.append(replica)

    async def phase(self, replica: str, ticket: str, phase: str) -> None:
        await self._ticket(ticket)[phase].wait()

    async def proceed(self, replica: str, ticket: str, load: bool = True) -> None:
        entry = self._ticket(ticket)
        entry["load"] = load
        entry["go"].set()

    async def swap(
        self,
        replica: str,
        path: str,
        version: str,
        ticket: str | None = None,
        hold: bool = False,
        digests: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        self.calls.append((replica, version))
        entry = self._ticket(ticket or uuid.uuid4().hex)
        try:
            if self.staged.get(replica) != path:
                await self.stage(replica, path, version, digests)
            if self.gate is not None:
                await self.gate.wait()
            self._log("drain", replica)
            await asyncio.sleep(self.drain_s.get(replica, 0.0))
            self._log("drained", replica)
            entry["drained"].set()
            if hold:
                await entry["go"].wait()
                if not entry["load"]:
                    self.staged.pop(replica, None)
                    self._log("called_off", replica)
                    raise RuntimeError(f"replica {replica}: swap called off; weights not changed")
            self.staged.pop(replica, None)
            previous = self.replicas[replica]["version"]
            old_path = self.replicas[replica]["path"]
            self._log("load", replica)
            await asyncio.sleep(self.load_s)
            self.replicas[replica].update(version=version, path=path)
            self._log("loaded", replica)
            entry["loaded"].set()
            await asyncio.sleep(self.smoke_s)
            if replica == self.fail_on and path != old_path:
                self.replicas[replica].update(version=previous, path=old_path)
                self._log("failed", replica)
                raise RuntimeError(f"replica {replica}: smoke test failed")
            self._log("smoke_end", replica)
        finally:
            entry["drained"].set()
            entry["loaded"].set()
        return {
            "replica": replica,
            "version": version,
            "previous": previous,
            "drain_s": 0.0,
            "load_s": self.load_s,
            "smoke_s": self.smoke_s,
            "total_s": self.load_s + self.smoke_s,
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


async def test_a_promotion_is_not_refused_for_a_periodic_reconcile(setup):
    """The periodic reconcile asks the replicas' states (slow under load) without the swap lock when
    nothing is stale, and a promotion arriving while it brings a replica back waits for it instead of a
    409 (the e2e hot-swap test once got "another swap is in progress" from a reconcile tick)."""
    controller, fleet, _ledger, tmp, _ = setup
    vid = await imported(controller, tmp, "v1")
    slow = asyncio.Event()
    states = fleet.states

    async def slow_states():  # type: ignore[no-untyped-def]
        await slow.wait()
        return await states()

    fleet.states = slow_states  # type: ignore[method-assign]
    tick = asyncio.create_task(controller.reconcile())
    await asyncio.sleep(0.01)
    assert not controller._lock.locked()  # nothing stale to bring back: the lock stays free
    slow.set()
    fleet.states = states  # type: ignore[method-assign]
    assert await tick == []
    await controller.promote(vid)

    base = controller._base_dir
    fleet.replicas["llm-1"].update(version=model_version(base), path=str(base))  # restarted on the old pointer
    fleet.gate = asyncio.Event()
    tick = asyncio.create_task(controller.reconcile())
    await asyncio.sleep(0.05)
    assert controller._lock.locked()  # bringing llm-1 back
    promotion = asyncio.create_task(controller.rollback())
    await asyncio.sleep(0.05)
    assert not promotion.done()  # waiting, not refused
    fleet.gate.set()
    await tick
    assert (await promotion)["kind"] == "rollback"


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


# --- overlapped swaps (issue 16): staged ahead, drained together, loads one at a time ----------------


async def test_replicas_stage_while_serving_drain_together_and_load_together_on_their_own_cores(setup):
    controller, fleet, _ledger, tmp, _ = setup
    vid = await imported(controller, tmp, "v1")
    fleet.stage_s, fleet.load_s, fleet.smoke_s = 0.1, 0.2, 0.3
    started = time.monotonic()
    await controller.promote(vid)
    elapsed = time.monotonic() - started
    for name in ("llm-0", "llm-1"):
        # Staged while still serving; closed only once staged.
        assert fleet.at("staged", name) <= fleet.at("drain", name)
    # Both replicas staged before the first smoke test ended; they drained at the same time.
    assert fleet.at("staged", "llm-1") < fleet.at("smoke_end", "llm-0")
    assert fleet.at("drain", "llm-1") < fleet.at("loaded", "llm-0")
    # Each on its own core: llm-1 loads while llm-0 loads.
    assert fleet.at("load", "llm-1") < fleet.at("loaded", "llm-0")
    assert sorted(fleet.calls) == [("llm-0", vid), ("llm-1", vid)]
    assert {r["version"] for r in fleet.replicas.values()} == {vid}
    # stage 0.1 + load 0.2 + smoke 0.3, where one load after the other took 0.1 + 0.2 + 0.2 + 0.3.
    assert elapsed < 0.75, elapsed


async def test_the_swap_waits_for_the_longest_drain_once(setup):
    controller, fleet, _ledger, tmp, _ = setup
    vid = await imported(controller, tmp, "v1")
    fleet.drain_s = {"llm-0": 0.4, "llm-1": 0.4}  # a long request in flight on each replica
    fleet.load_s, fleet.smoke_s = 0.05, 0.1
    started = time.monotonic()
    await controller.promote(vid)
    assert time.monotonic() - started < 0.4 + 0.05 * 2 + 0.1 + 0.2  # not 2 × 0.4


async def test_the_replica_that_drains_first_loads_first(setup):
    controller, fleet, _ledger, tmp, _ = setup
    vid = await imported(controller, tmp, "v1")
    fleet.drain_s = {"llm-0": 0.3}  # llm-0 still has a request in flight; llm-1 is idle
    fleet.smoke_s = 0.05
    report = await controller.promote(vid)
    assert fleet.at("smoke_end", "llm-1") < fleet.at("drained", "llm-0")  # llm-1 served again meanwhile
    assert [s["replica"] for s in report["replicas"]] == ["llm-0", "llm-1"]  # the report stays in id order


async def test_replicas_sharing_a_core_smoke_test_one_after_another(setup):
    controller, fleet, _ledger, tmp, _ = setup
    vid = await imported(controller, tmp, "v1")
    fleet.replicas["llm-1"]["devices"] = ["cpu:0"]  # the same core as llm-0
    fleet.load_s, fleet.smoke_s = 0.05, 0.1
    await controller.promote(vid)
    assert fleet.at("staged", "llm-1") < fleet.at("drain", "llm-0")  # staging still runs ahead
    assert fleet.at("smoke_end", "llm-0") <= fleet.at("load", "llm-1")


async def test_replicas_with_unknown_devices_count_as_sharing(setup):
    controller, fleet, _ledger, tmp, _ = setup
    vid = await imported(controller, tmp, "v1")
    for r in fleet.replicas.values():
        r.pop("devices")
    fleet.smoke_s = 0.05
    await controller.promote(vid)
    assert fleet.at("smoke_end", "llm-0") <= fleet.at("load", "llm-1")


async def test_of_three_replicas_only_the_two_on_one_core_wait_for_each_other(tmp_path):
    base = write_model(tmp_path / "base")
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    fleet = FakeFleet(base, n=3)
    fleet.replicas["llm-2"]["devices"] = ["cpu:0"]  # llm-0's core; llm-1 has its own
    controller = SwapController(ledger, fleet, base_dir=base, versions_dir=tmp_path / "versions")
    vid = await imported(controller, tmp_path, "v1")
    fleet.load_s, fleet.smoke_s = 0.1, 0.2
    fleet.drain_s = {"llm-0": 0.2}  # llm-0 drains last
    await controller.promote(vid)
    assert fleet.at("load", "llm-2") < fleet.at("loaded", "llm-1")  # llm-1 and llm-2: other cores, at once
    assert fleet.at("smoke_end", "llm-2") <= fleet.at("load", "llm-0")  # llm-0 waits for llm-2, on its core
    assert {r["version"] for r in fleet.replicas.values()} == {vid}
    ledger.close()


async def test_without_overlap_each_replica_swaps_after_the_previous_one_ended(tmp_path):
    base = write_model(tmp_path / "base")
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    fleet = FakeFleet(base)
    controller = SwapController(ledger, fleet, base_dir=base, versions_dir=tmp_path / "versions", overlap=False)
    vid = await imported(controller, tmp_path, "v1")
    fleet.smoke_s = 0.05
    await controller.promote(vid)
    assert fleet.at("smoke_end", "llm-0") <= fleet.at("stage", "llm-1")  # nothing staged ahead
    assert fleet.at("staged", "llm-1") <= fleet.at("drain", "llm-1")
    ledger.close()


async def test_a_smoke_failure_while_the_next_replica_loads_rolls_both_back(setup):
    controller, fleet, _ledger, tmp, results = setup
    base_id = controller.serving().id
    vid = await imported(controller, tmp, "v1")
    fleet.fail_on = "llm-0"
    fleet.load_s, fleet.smoke_s = 0.05, 0.2
    with pytest.raises(SwapFailedError, match="failed on llm-0: replica llm-0: smoke test failed; rolled back llm-1"):
        await controller.promote(vid)
    assert fleet.at("load", "llm-1") < fleet.at("failed", "llm-0")  # llm-1 had loaded meanwhile
    assert {r["version"] for r in fleet.replicas.values()} == {base_id}
    event = controller.history()[0]
    assert event["failed_replica"] == "llm-0" and event["rolled_back"] == ["llm-1"]
    assert results == ["rolled_back"]


async def test_a_failure_calls_off_the_replicas_still_waiting_to_load(tmp_path):
    base = write_model(tmp_path / "base")
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    fleet = FakeFleet(base, n=3)
    for r in fleet.replicas.values():
        r["devices"] = ["cpu:0"]  # one core: each smoke test ends before the next load
    controller = SwapController(ledger, fleet, base_dir=base, versions_dir=tmp_path / "versions")
    base_id = controller.serving().id
    vid = await imported(controller, tmp_path, "v1")
    fleet.fail_on = "llm-1"
    with pytest.raises(SwapFailedError, match=r"failed on llm-1: .*smoke test failed; rolled back llm-0"):
        await controller.promote(vid)
    assert [s for _, s, r in fleet.events if r == "llm-2"][-1] == "called_off"  # reopened, never loaded
    assert {r["version"] for r in fleet.replicas.values()} == {base_id}
    assert controller.history()[0]["rolled_back"] == ["llm-0"]
    ledger.close()


async def test_the_weights_are_hashed_by_the_replicas_not_by_the_controller_too(setup, monkeypatch):
    """One sha256 per loader: each replica checks the bytes it stages against the manifest's digests, which
    the controller reads and hands over; the controller hashes the other files only."""
    import unlearn_jobs.publish as publish

    controller, fleet, ledger, tmp, _ = setup
    vid = await imported(controller, tmp, "v1")
    hashed: list[str] = []
    real = publish.sha256_file
    monkeypatch.setattr(publish, "sha256_file", lambda p: hashed.append(Path(p).name) or real(p))
    await controller.promote(vid)
    assert "model.safetensors" not in hashed and "config.json" in hashed
    listed = ledger.get_version(vid).manifest["files"]
    assert fleet.digests == [{"model.safetensors": listed["model.safetensors"]}] * 2


async def test_without_overlap_a_corrupted_version_is_still_refused(tmp_path):
    """No staging ahead: the first replica's swap stages (and hashes) the weights, finds them wrong and
    changes nothing; the controller then hashes them itself and refuses the version."""
    base = write_model(tmp_path / "base")
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    fleet = FakeFleet(base)
    controller = SwapController(ledger, fleet, base_dir=base, versions_dir=tmp_path / "versions", overlap=False)
    base_id = controller.serving().id
    vid = await imported(controller, tmp_path, "v1")
    weights = Path(ledger.get_version(vid).path) / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(VersionInvalidError, match=r"checksum mismatch for model\.safetensors"):
        await controller.promote(vid)
    assert {r["version"] for r in fleet.replicas.values()} == {base_id}
    assert controller.history()[0]["event"] == "version.swap_refused"
    ledger.close()


async def test_a_refused_version_discards_what_the_replicas_staged(setup):
    controller, fleet, ledger, tmp, _ = setup
    vid = await imported(controller, tmp, "v1")
    weights = Path(ledger.get_version(vid).path) / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(VersionInvalidError, match="checksum mismatch"):
        await controller.promote(vid)
    assert fleet.calls == [] and fleet.staged == {}
    assert sorted(fleet.discarded) == ["llm-0", "llm-1"]


async def test_a_replica_that_cannot_stage_fails_the_swap_before_any_replica_drains(setup):
    controller, fleet, _ledger, tmp, results = setup
    base_id = controller.serving().id
    vid = await imported(controller, tmp, "v1")
    fleet.stage_fail = "llm-1"
    with pytest.raises(
        SwapFailedError, match="failed on llm-1: replica llm-1: checksum mismatch; weights not changed; still serving"
    ):
        await controller.promote(vid)
    assert fleet.calls == []  # no replica drained
    assert {r["version"] for r in fleet.replicas.values()} == {base_id}
    assert fleet.staged == {} and "llm-0" in fleet.discarded
    assert results == ["failed"]
