"""The engine protocol every LLM replica drives: generate, reload weights, pause/resume, health."""

from __future__ import annotations

import abc
import importlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.config import LetheConfig


@dataclass(frozen=True)
class SamplingSpec:
    """What the chat request asked for, in engine-neutral terms."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True)
class GenerationChunk:
    """One step of a generation: the new text and the running token counts."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None = None  # "stop" | "length" once the engine is done


@dataclass(frozen=True)
class EngineInfo:
    """What a replica serves right now."""

    model_path: str
    model_version: str
    max_model_len: int
    replica: str = ""
    extra: dict[str, str] = field(default_factory=dict)


class EngineError(Exception):
    """The engine could not serve a request; `status` says whose fault it was."""

    status = 503
    code = "engine_error"


class PromptTooLongError(EngineError):
    status = 400
    code = "context_length_exceeded"


class EngineNotReadyError(EngineError):
    status = 503
    code = "engine_not_ready"


class ReplicaSwappingError(EngineError):
    """The replica is taking new weights and admits no request; the ingress tries another."""

    status = 503
    code = "replica_swapping"


class Engine(abc.ABC):
    """An inference engine inside one LLM replica.

    >>> engine = ENGINES.create("vllm", config)
    >>> await engine.start()
    >>> async for chunk in engine.generate("Hi", SamplingSpec(max_tokens=8), "req-1"):
    ...     print(chunk.text, end="")
    """

    @abc.abstractmethod
    async def start(self) -> None:
        """Load the model; returns once the engine can generate."""

    @abc.abstractmethod
    def generate(self, prompt: str, sampling: SamplingSpec, request_id: str) -> AsyncIterator[GenerationChunk]:
        """Stream text deltas for one prompt (already chat-templated)."""

    @abc.abstractmethod
    async def reload_weights(self, path: str, model_version: str) -> None:
        """Load the weights in `path` in place (same architecture) and drop cached KV."""

    @abc.abstractmethod
    async def pause(self) -> None:
        """Stop admitting new work; requests in flight keep their state."""

    @abc.abstractmethod
    async def resume(self) -> None:
        """Admit work again after `pause`."""

    @abc.abstractmethod
    async def health(self) -> bool:
        """True when the engine answers."""

    @abc.abstractmethod
    def info(self) -> EngineInfo:
        """The model and weight version this engine serves."""

    async def shutdown(self) -> None:
        """Release the engine's processes and memory."""


class EngineRegistry:
    """Engine classes by name, imported lazily so heavy modules (vllm) load only where used.

    >>> ENGINES.register("vllm", "gateway.chat.engines.vllm:VLLMEngine")
    >>> engine = ENGINES.create("vllm", config)
    """

    def __init__(self) -> None:
        self._targets: dict[str, str | type[Engine]] = {}

    def register(self, name: str, target: str | type[Engine]) -> None:
        self._targets[name] = target

    def names(self) -> list[str]:
        return sorted(self._targets)

    def resolve(self, name: str) -> type[Engine]:
        try:
            target = self._targets[name]
        except KeyError:
            raise ValueError(f"unknown engine backend {name!r}; known: {', '.join(self.names())}") from None
        if isinstance(target, str):
            module_name, _, attr = target.partition(":")
            target = getattr(importlib.import_module(module_name), attr)
        return target

    def create(self, name: str, config: "LetheConfig") -> Engine:
        return self.resolve(name)(config)  # type: ignore[call-arg]


ENGINES = EngineRegistry()
ENGINES.register("vllm", "gateway.chat.engines.vllm:VLLMEngine")
