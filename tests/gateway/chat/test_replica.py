"""One replica's swap: drain in-flight requests, refuse new ones, smoke-test, restore on failure."""

from __future__ import annotations

import asyncio

import pytest

from gateway.chat.engines.base import ReplicaSwappingError, SamplingRequest, StreamStart
from gateway.chat.replica import LLMReplica, SwapCalledOffError, SwapError, SwapSettings
from gateway.config import load_config
from tests.support.engines import SmokeFailpointEngine, smoke_failpoint
from tests.support.fakes import ScriptedEngine

MESSAGES = [{"role": "user", "content": "Hello?"}]
EIGHT = SamplingRequest(max_tokens=8)


@pytest.fixture
async def replica(tiny_model_dir, tmp_path):
    config = load_config(
        env={"LETHE_MODEL": str(tiny_model_dir), "LETHE_MAX_MODEL_LEN": "256", "LETHE_HOME": str(tmp_path)}
    )
    scripted = ScriptedEngine("Paris is the capital of France.", version="v-old")
    # The test engine the end-to-end swap test runs, over a scripted engine instead of vLLM.
    engine = SmokeFailpointEngine(config, "llm-0", inner=scripted)
    replica = LLMReplica(config, replica_id="llm-0", engine=engine)
    await replica.start()
    return replica


async def test_swap_waits_for_requests_in_flight_and_refuses_new_ones(replica):
    old = replica.generate(MESSAGES, EIGHT, "r-old")
    start = await old.__anext__()
    assert isinstance(start, StreamStart) and start.model_version == "v-old"
    swap = asyncio.create_task(replica.swap("/new", "v-new", SwapSettings()))
    await asyncio.sleep(0.05)
    assert not swap.done()  # the old request is still in flight
    with pytest.raises(ReplicaSwappingError):
        await replica.generate(MESSAGES, EIGHT, "r-refused").__anext__()
    text = "".join([c.text async for c in old])  # the old request finishes on the old weights
    assert text == "Paris is the capital of France."
    report = await asyncio.wait_for(swap, 5)
    assert report["version"] == "v-new" and report["previous"] == "v-old" and "Paris" in report["smoke_answer"]
    fresh = await replica.generate(MESSAGES, EIGHT, "r-new").__anext__()
    assert fresh.model_version == "v-new"


async def test_failed_smoke_test_restores_the_previous_weights(replica, tmp_path):
    failpoint = smoke_failpoint(tmp_path, "llm-0")
    failpoint.parent.mkdir()
    failpoint.touch()
    with pytest.raises(SwapError, match="smoke test failed: failpoint set for this replica; restored v-old"):
        await replica.swap("/new", "v-new", SwapSettings())
    assert replica.info().model_version == "v-old"
    failpoint.unlink()
    with pytest.raises(SwapError, match="does not match"):
        await replica.swap("/new", "v-new", SwapSettings(smoke_expect="(?i)berlin"))
    start = await replica.generate(MESSAGES, EIGHT, "r").__anext__()
    assert start.model_version == "v-old"  # admitting again


async def test_drain_timeout_leaves_the_weights_unchanged(replica):
    held = replica.generate(MESSAGES, EIGHT, "r-held")
    await held.__anext__()
    with pytest.raises(SwapError, match=r"still running after 0\.1 s; weights not changed"):
        await replica.swap("/new", "v-new", SwapSettings(drain_timeout_s=0.1))
    assert replica.info().model_version == "v-old"
    await held.aclose()
    assert replica.state()["inflight"] == 0


async def test_a_replica_that_cannot_verify_its_version_refuses_traffic_until_a_verified_swap(tiny_model_dir, tmp_path):
    from gateway.chat.engines.base import ReplicaUnverifiedError

    config = load_config(
        env={"LETHE_MODEL": str(tiny_model_dir), "LETHE_MAX_MODEL_LEN": "256", "LETHE_HOME": str(tmp_path)}
    )
    engine = ScriptedEngine("Paris is the capital of France.", version="base-1")
    replica = LLMReplica(config, replica_id="llm-0", engine=engine, unverified="v7 fails verification")
    await replica.start()
    with pytest.raises(ReplicaUnverifiedError, match="refuses traffic: v7 fails verification"):
        await replica.generate(MESSAGES, EIGHT, "r").__anext__()
    # Not ready (GET /readyz answers 503), yet alive: Serve must not restart it into the same state.
    assert not await replica.health() and await replica.alive()
    assert replica.state()["verified"] is False
    # The ingress retries another replica, as for one that is swapping.
    assert issubclass(ReplicaUnverifiedError, ReplicaSwappingError)
    await replica.swap("/versions/v6", "v6", SwapSettings())  # the controller verified v6 first
    assert await replica.health() and replica.state()["verified"] is True
    start = await replica.generate(MESSAGES, EIGHT, "r").__anext__()
    assert start.model_version == "v6"


class StagingEngine(ScriptedEngine):
    """A scripted engine that records staging and reloads, and whether the replica admitted requests then."""

    def __init__(self) -> None:
        super().__init__("Paris is the capital of France.", version="v-old")
        self.log: list[tuple[str, str]] = []
        self.replica: LLMReplica | None = None
        self.stage_fail = False
        self.smoke_delay = 0.0

    def _admitting(self) -> str:
        return "open" if self.replica is not None and self.replica._admitting else "closed"

    async def stage_weights(self, path: str, model_version: str, digests: dict[str, str] | None = None) -> None:
        self.log.append(("stage", self._admitting()))
        self.digests = digests
        await asyncio.sleep(0.01)
        if self.stage_fail:
            raise RuntimeError("checksum mismatch: model.safetensors")

    async def discard_staged(self) -> None:
        self.log.append(("discard", self._admitting()))

    async def reload_weights(self, path: str, model_version: str) -> None:
        self.log.append(("reload", self._admitting()))
        await super().reload_weights(path, model_version)

    async def generate(self, prompt, sampling, request_id):
        if request_id.startswith("smoke-"):
            self.log.append(("smoke", self._admitting()))
            await asyncio.sleep(self.smoke_delay)
        async for chunk in super().generate(prompt, sampling, request_id):
            yield chunk


@pytest.fixture
async def staging(tiny_model_dir, tmp_path):
    config = load_config(
        env={"LETHE_MODEL": str(tiny_model_dir), "LETHE_MAX_MODEL_LEN": "256", "LETHE_HOME": str(tmp_path)}
    )
    engine = StagingEngine()
    replica = LLMReplica(config, replica_id="llm-0", engine=engine)
    engine.replica = replica
    await replica.start()
    return replica, engine


async def test_staging_runs_while_serving_and_the_drain_starts_only_after_it(staging):
    replica, engine = staging
    held = replica.generate(MESSAGES, EIGHT, "r-held")
    await held.__anext__()
    report = await replica.stage("/new", "v-new")  # with a request in flight: nothing waits for it
    assert report["replica"] == "llm-0" and report["stage_s"] >= 0
    assert replica.state()["staged"] == "/new" and replica.state()["inflight"] == 1
    start = await replica.generate(MESSAGES, EIGHT, "r-during").__anext__()  # still admitting
    assert start.model_version == "v-old"
    swap = asyncio.create_task(replica.swap("/new", "v-new", SwapSettings()))
    await asyncio.sleep(0.05)
    [c async for c in held]
    result = await asyncio.wait_for(swap, 5)
    # Staged once, while open; reloaded after the drain, while closed; smoke-tested before reopening.
    assert engine.log == [("stage", "open"), ("reload", "closed"), ("smoke", "closed")]
    assert result["stage_s"] == report["stage_s"] and result["version"] == "v-new"
    assert replica.state()["staged"] is None


async def test_a_swap_without_staging_stages_before_it_closes(staging):
    replica, engine = staging
    await replica.swap("/new", "v-new", SwapSettings())
    assert engine.log == [("stage", "open"), ("reload", "closed"), ("smoke", "closed")]


async def test_phases_are_reported_during_the_smoke_test_and_after_the_swap(staging):
    replica, engine = staging
    engine.smoke_delay = 0.3
    swap = asyncio.create_task(replica.swap("/new", "v-new", SwapSettings(), ticket="t1"))
    await asyncio.wait_for(replica.wait_phase("t1", "loaded", 5), 5)
    assert not swap.done() and engine.log[-1] == ("smoke", "closed")  # loaded, still smoke-testing
    await swap
    await asyncio.wait_for(replica.wait_phase("t1", "loaded", 5), 1)  # a late waiter finds it reached
    # A waiter that comes before its swap starts waits for it.
    early = asyncio.create_task(replica.wait_phase("t2", "drained", 5))
    await asyncio.sleep(0.02)
    assert not early.done()
    await replica.swap("/newer", "v-newer", SwapSettings(), ticket="t2")
    await asyncio.wait_for(early, 1)


async def test_a_held_swap_drains_then_loads_only_when_let_go(staging):
    replica, engine = staging
    held = replica.generate(MESSAGES, EIGHT, "r-held")
    await held.__anext__()
    swap = asyncio.create_task(replica.swap("/new", "v-new", SwapSettings(), ticket="t", hold=True))
    await asyncio.sleep(0.05)
    assert not replica._admitting  # closed at once: no new request while it drains
    [c async for c in held]
    await asyncio.wait_for(replica.wait_phase("t", "drained", 5), 5)
    await asyncio.sleep(0.05)
    assert ("reload", "closed") not in engine.log  # drained, waiting for its turn
    replica.proceed("t")
    report = await asyncio.wait_for(swap, 5)
    assert report["version"] == "v-new" and report["wait_s"] >= 0.05
    assert engine.log == [("stage", "open"), ("reload", "closed"), ("smoke", "closed")]


async def test_a_held_swap_called_off_reopens_unchanged(staging):
    replica, engine = staging
    swap = asyncio.create_task(replica.swap("/new", "v-new", SwapSettings(), ticket="t", hold=True))
    await asyncio.wait_for(replica.wait_phase("t", "drained", 5), 5)
    replica.proceed("t", load=False)
    with pytest.raises(SwapCalledOffError, match="called off; weights not changed"):
        await swap
    assert ("reload", "closed") not in engine.log and ("discard", "closed") in engine.log
    start = await replica.generate(MESSAGES, EIGHT, "r").__anext__()
    assert start.model_version == "v-old"
    # No go at all: it gives up after drain_timeout_s, unchanged.
    with pytest.raises(SwapError, match=r"no go to load within 0\.1 s; weights not changed"):
        await replica.swap("/new", "v-new", SwapSettings(drain_timeout_s=0.1), ticket="t-lost", hold=True)
    assert replica.info().model_version == "v-old" and replica._admitting


async def test_a_staging_failure_changes_nothing(staging):
    replica, engine = staging
    engine.stage_fail = True
    with pytest.raises(SwapError, match=r"checksum mismatch: model\.safetensors; weights not changed"):
        await replica.swap("/new", "v-new", SwapSettings())
    assert ("reload", "closed") not in engine.log and ("discard", "open") in engine.log
    assert replica.info().model_version == "v-old"
    start = await replica.generate(MESSAGES, EIGHT, "r").__anext__()
    assert start.model_version == "v-old"
