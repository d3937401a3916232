"""Test engines chosen by import path (`engine.backend: "tests.support.engines:SmokeFailpointEngine"`).

They run inside real LLM replicas (the Serve deployment builds them with `Class(config, replica=...)`),
so a test changes what one replica does without a test hook in the production code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from gateway.chat.engines.base import Engine, EngineError, EngineInfo, GenerationChunk, SamplingSpec
from gateway.chat.engines.vllm import VLLMEngine
from gateway.config import LetheConfig


def smoke_failpoint(home: Path, replica: str) -> Path:
    """The marker file that makes `replica`'s swap smoke test fail while it exists."""
    return home / "failpoints" / f"smoke-fail-{replica}"


class SmokeFailpointEngine(Engine):
    """Another engine (vLLM by default) whose generation of the swap smoke prompt fails while
    `<home>/failpoints/smoke-fail-<replica>` exists; every other call goes through unchanged.

    The prompt is recognised by `swap.smoke_prompt` in the chat-templated text, the replica by the
    id the deployment gives its engine (`llm-<rank>`, as `/v1/admin/models/versions` lists it).

    >>> # LETHE_ENGINE=tests.support.engines:SmokeFailpointEngine lethe serve
    >>> smoke_failpoint(home, "llm-1").touch()   # llm-1's next swap fails its smoke test
    """

    def __init__(self, config: LetheConfig, replica: str = "", inner: Engine | None = None) -> None:
        self._inner = inner if inner is not None else VLLMEngine(config, replica)
        self._marker = smoke_failpoint(config.home, replica)
        self._smoke_prompt = config.swap.smoke_prompt

    async def start(self) -> None:
        await self._inner.start()

    async def generate(self, prompt: str, sampling: SamplingSpec, request_id: str) -> AsyncIterator[GenerationChunk]:
        if self._smoke_prompt in prompt and self._marker.exists():
            raise EngineError("failpoint set for this replica")
        stream = self._inner.generate(prompt, sampling, request_id)
        try:
            async for chunk in stream:
                yield chunk
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:  # closing this stream closes the engine's (vLLM aborts the request)
                await close()

    async def stage_weights(self, path: str, model_version: str, digests: dict[str, str] | None = None) -> None:
        await self._inner.stage_weights(path, model_version, digests)

    async def discard_staged(self) -> None:
        await self._inner.discard_staged()

    async def reload_weights(self, path: str, model_version: str) -> None:
        await self._inner.reload_weights(path, model_version)

    async def pause(self) -> None:
        await self._inner.pause()

    async def resume(self) -> None:
        await self._inner.resume()

    async def health(self) -> bool:
        return await self._inner.health()

    def info(self) -> EngineInfo:
        return self._inner.info()

    async def shutdown(self) -> None:
        await self._inner.shutdown()
