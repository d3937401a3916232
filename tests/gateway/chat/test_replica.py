"""One replica's swap: drain in-flight requests, refuse new ones, smoke-test, restore on failure."""

from __future__ import annotations

import asyncio

import pytest

from gateway.chat.engines.base import ReplicaSwappingError, SamplingRequest, StreamStart
from gateway.chat.replica import LLMReplica, SwapError, SwapSettings
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
