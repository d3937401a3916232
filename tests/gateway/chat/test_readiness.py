"""The engine's readiness on the chat path: checked before the first request and after a failed check,
refreshed in the background otherwise, so a request does not wait for two round trips to a replica."""

from __future__ import annotations

import asyncio

import pytest

from gateway.chat import service as service_module
from gateway.chat.protocol import ChatCompletionRequest
from gateway.chat.service import ChatService
from gateway.errors import ServiceUnavailableError
from tests.support.api_fakes import EchoLLM

MODEL = "fake-model"


def request() -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]})


class GatedLLM(EchoLLM):
    """`health` waits for `gate` and answers `healthy`; counts its calls."""

    def __init__(self) -> None:
        super().__init__("Hi there.")
        self.gate = asyncio.Event()
        self.gate.set()
        self.healthy = True
        self.health_calls = 0

    async def health(self) -> bool:
        self.health_calls += 1
        await self.gate.wait()
        return self.healthy


@pytest.fixture
def stale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_module, "READY_FOR_S", 0.0)  # every request finds readiness stale


async def answer(service: ChatService) -> str:
    completion = await asyncio.wait_for(service.collect(await service.open(request())), 5)
    return completion.choices[0].message.content


async def test_the_first_request_waits_for_readiness_and_a_later_one_refreshes_it_in_the_background(stale):
    llm = GatedLLM()
    service = ChatService(llm, MODEL)
    assert await answer(service) == "Hi there."
    assert llm.health_calls == 1
    llm.gate.clear()  # the replica is slow to answer its health check
    assert await answer(service) == "Hi there."  # answered without waiting for it
    assert llm.health_calls == 2  # the refresh was started
    assert await answer(service) == "Hi there."
    assert llm.health_calls == 2  # one refresh at a time
    llm.gate.set()
    await asyncio.wait_for(service._refresh, 5)


async def test_a_failed_background_check_makes_the_next_request_wait_and_answer_503(stale):
    llm = GatedLLM()
    service = ChatService(llm, MODEL)
    await answer(service)
    llm.healthy = False
    await answer(service)  # served: the refresh that finds the engine unhealthy runs beside it
    await asyncio.wait_for(service._refresh, 5)
    with pytest.raises(ServiceUnavailableError) as refused:
        await service.open(request())
    assert refused.value.status == 503 and refused.value.code == "engine_not_ready"
    llm.healthy = True  # recovered: the next request's own check passes
    assert await answer(service) == "Hi there."


async def test_a_failed_readiness_probe_is_not_outlived_by_an_earlier_pass():
    llm = GatedLLM()
    service = ChatService(llm, MODEL)
    await answer(service)  # readiness fresh for READY_FOR_S
    llm.healthy = False
    with pytest.raises(ServiceUnavailableError):
        await service.ready()  # /readyz saw the engine unhealthy
    with pytest.raises(ServiceUnavailableError):
        await service.open(request())  # within READY_FOR_S of the pass, still refused
