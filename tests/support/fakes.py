"""A scripted in-process engine for unit tests of the pipeline (never for end-to-end claims)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from gateway.chat.engines.base import (
    Engine,
    EngineError,
    EngineInfo,
    GenerationChunk,
    SamplingRequest,
    SamplingSpec,
    StreamStart,
)
from gateway.chat.replica import LLMReplica


class ScriptedEngine(Engine):
    """Streams `reply` word by word; `healthy` and `fail_after` script failures."""

    def __init__(self, reply: str = "Hello from the scripted engine.", *, version: str = "scripted-v1") -> None:
        self.reply = reply
        self.version = version
        self.healthy = True
        self.fail_after: int | None = None
        self.split_chars = False  # stream one character per delta (leaks split across chunks)
        self.prompts: list[str] = []

    async def start(self) -> None:
        return None

    async def generate(self, prompt: str, sampling: SamplingSpec, request_id: str) -> AsyncIterator[GenerationChunk]:
        self.prompts.append(prompt)
        words = list(self.reply) if self.split_chars else self.reply.split(" ")
        pieces = words if self.split_chars else [w if i == 0 else " " + w for i, w in enumerate(words)]
        pieces = pieces[: sampling.max_tokens]
        for i, piece in enumerate(pieces, start=1):
            if self.fail_after is not None and i > self.fail_after:
                raise EngineError("scripted engine failure")
            await asyncio.sleep(0)
            done = i == len(pieces)
            finish = ("stop" if len(pieces) == len(words) else "length") if done else None
            yield GenerationChunk(piece, 10, i, finish)

    async def reload_weights(self, path: str, model_version: str) -> None:
        self.version = model_version

    async def pause(self) -> None:
        return None

    async def resume(self) -> None:
        return None

    async def health(self) -> bool:
        return self.healthy

    def info(self) -> EngineInfo:
        return EngineInfo(model_path="/scripted", model_version=self.version, max_model_len=256)


class LocalLLMClient:
    """`LLMClient` calling an `LLMReplica` in-process instead of through a Serve handle."""

    def __init__(self, replica: LLMReplica) -> None:
        self.replica = replica

    def generate(
        self, messages: list[dict[str, str]], sampling: SamplingRequest, request_id: str
    ) -> AsyncIterator[StreamStart | GenerationChunk]:
        return self.replica.generate(messages, sampling, request_id)

    async def health(self) -> bool:
        return await self.replica.health()

    async def info(self) -> EngineInfo:
        return self.replica.info()


class StaticGuard:
    """`GuardSource` holding one fixed index; `reason` scripts an out-of-service replica."""

    def __init__(self, index) -> None:
        self.index = index
        self.reason: str | None = None

    def out_of_service_reason(self) -> str | None:
        return self.reason
