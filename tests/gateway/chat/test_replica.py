"""One replica's swap: drain in-flight requests, refuse new ones, smoke-test, restore on failure."""

from __future__ import annotations

import asyncio

import pytest

from gateway.config import load_config
from gateway.chat.engines.base import ReplicaSwappingError
from gateway.chat.replica import LLMReplica, StreamStart, SwapError, SwapSettings
from tests.support.fakes import ScriptedEngine

MESSAGES = [{"role": "user", "content": "Hello?"}]


@pytest.fixture
async def replica(tiny_model_dir):
    config = load_config(env={"LETHE_MODEL": str(tiny_model_dir), "LETHE_MAX_MODEL_LEN": "256"})
    engine = ScriptedEngine("Paris is the capital of France.", version="v-old")
    replica = LLMReplica(config, replica_id="llm-0", engine=engine)
    await replica.start()
    return replica


async def test_swap_waits_for_requests_in_flight_and_refuses_new_ones(replica):
    old = replica.generate(MESSAGES, {"max_tokens": 8}, "r-old")
    start = await old.__anext__()
    assert isinstance(start, StreamStart) and start.model_version == "v-old"
    swap = asyncio.create_task(replica.swap("/new", "v-new", SwapSettings()))
    await asyncio.sleep(0.05)
    assert not swap.done()  # the old request is still in flight
    with pytest.raises(ReplicaSwappingError):
        await replica.generate(MESSAGES, {"max_tokens": 8}, "r-refused").__anext__()
    text = "".join([c.text async for c in old])  # the old request finishes on the old weights
    assert text == "Paris is the capital of France."
    report = await asyncio.wait_for(swap, 5)
    assert report["version"] == "v-new" and report["previous"] == "v-old" and "Paris" in report["smoke_answer"]
    fresh = await replica.generate(MESSAGES, {"max_tokens": 8}, "r-new").__anext__()
    assert fresh.model_version == "v-new"


async def test_failed_smoke_test_restores_the_previous_weights(replica):
    with pytest.raises(SwapError, match="failpoint set for this replica; restored v-old"):
        await replica.swap("/new", "v-new", SwapSettings(fail_smoke=True))
    assert replica.info().model_version == "v-old"
    with pytest.raises(SwapError, match="does not match"):
        await replica.swap("/new", "v-new", SwapSettings(smoke_expect="(?i)berlin"))
    start = await replica.generate(MESSAGES, {"max_tokens": 8}, "r").__anext__()
    assert start.model_version == "v-old"  # admitting again


async def test_drain_timeout_leaves_the_weights_unchanged(replica):
    held = replica.generate(MESSAGES, {"max_tokens": 8}, "r-held")
    await held.__anext__()
    with pytest.raises(SwapError, match="still running after 0.1 s; weights not changed"):
        await replica.swap("/new", "v-new", SwapSettings(drain_timeout_s=0.1))
    assert replica.info().model_version == "v-old"
    await held.aclose()
    assert replica.state()["inflight"] == 0
