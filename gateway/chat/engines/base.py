"""The engine protocol every LLM replica drives: generate, reload weights, pause/resume, health."""

from __future__ import annotations

import abc
import asyncio
import hashlib
import importlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from gateway.config import LetheConfig

# Written last into a prepared base model folder: its presence means the folder is complete.
MODEL_MARKER = "lethe-model.json"


def model_version(path: str | os.PathLike[str]) -> str:
    """The version id of the weights in `path`.

    Published weight versions carry it in `manifest.json`; prepared base models in
    `lethe-model.json`; any other folder gets `base-` + a digest of its config and weight files.
    """
    folder = Path(path)
    for marker, key in (("manifest.json", "version_id"), (MODEL_MARKER, "version")):
        try:
            value = json.loads((folder / marker).read_text()).get(key)
        except (OSError, ValueError):
            continue
        if isinstance(value, str) and value:
            return value
    digest = hashlib.sha256()
    for file in sorted(folder.glob("*.json")) + sorted(folder.glob("*.safetensors")):
        digest.update(file.name.encode())
        with file.open("rb") as fh:
            digest.update(fh.read(1 << 20))
        digest.update(str(file.stat().st_size).encode())
    return f"base-{digest.hexdigest()[:12]}"


@dataclass(frozen=True)
class StreamStart:
    """First item of every generation stream: who answers, with which weights, for how many tokens.

    The ingress reads it before committing to a 200, so errors surface as proper statuses and the
    `x-lethe-model-version` header names the weights that really produced the text.
    """

    model_version: str
    replica: str
    prompt_tokens: int
    max_tokens: int


@dataclass(frozen=True)
class SamplingRequest:
    """Sampling as a chat request asked for it, sent from the ingress to an LLM replica.

    The replica turns it into a `SamplingSpec` once it knows the prompt's length: `max_tokens` None
    means the configured default, capped by the room the context leaves; None for `temperature` or
    `top_p` means the engine's neutral value (1.0).
    """

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None


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


class ReplicaUnverifiedError(ReplicaSwappingError):
    """The replica could not verify the serving weight version and serves nothing rather than other
    weights; like a swapping replica it admits no request, so the ingress tries another."""


class Engine(abc.ABC):
    """An inference engine inside one LLM replica.

    >>> engine = ENGINES.create("vllm", config, replica="llm-0")
    >>> await engine.start()
    >>> async for chunk in engine.generate("Hi", SamplingSpec(max_tokens=8), "req-1"):
    ...     print(chunk.text, end="")
    """

    def __init__(self, config: LetheConfig, replica: str = "") -> None:  # noqa: B027 - a signature, no state
        """The constructor the registry calls: the whole config and the id of the replica the engine
        serves in. Engines built by hand (test fakes) may take other arguments."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Load the model; returns once the engine can generate."""

    @abc.abstractmethod
    def generate(self, prompt: str, sampling: SamplingSpec, request_id: str) -> AsyncIterator[GenerationChunk]:
        """Stream text deltas for one prompt (already chat-templated)."""

    @abc.abstractmethod
    async def reload_weights(self, path: str, model_version: str) -> None:
        """Load the weights in `path` in place (same architecture) and drop cached KV."""

    async def stage_weights(self, path: str, model_version: str, digests: dict[str, str] | None = None) -> None:
        """Read the weights in `path` into memory and check each weight file against `digests` (its sha256
        by file name; None: the version's manifest in `path`) while the engine keeps serving, so that the
        `reload_weights` that follows (after the drain) only copies them in; a failure here changes
        nothing the engine serves. Engines that cannot stage load from `path` in `reload_weights`: this
        default only checks the files on disk against `digests` (the controller leaves that to the
        replicas)."""
        for name, expected in (digests or {}).items():
            try:
                actual = await asyncio.to_thread(_sha256_file, Path(path) / name)
            except OSError as exc:
                raise EngineError(f"staging {model_version} failed: {name}: {exc.strerror or exc}") from None
            if actual != expected:
                raise EngineError(f"staging {model_version} failed: checksum mismatch: {name} is not the file listed")

    async def discard_staged(self) -> None:  # noqa: B027 - optional: nothing staged, nothing to free
        """Free weights staged by `stage_weights` that will not be loaded (a refused or failed swap)."""

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

    async def shutdown(self) -> None:  # noqa: B027 - an optional hook: most engines have nothing to free
        """Release the engine's processes and memory."""


class EngineRegistry:
    """Engine classes by name, imported lazily so heavy modules (vllm) load only where used.

    `engine.backend` is a registered name or an import path `package.module:Class` (an engine that
    ships outside Lethe, or a test engine), like Ray Serve LLM's `engine_cls`.

    >>> ENGINES.register("vllm", "gateway.chat.engines.vllm:VLLMEngine")
    >>> engine = ENGINES.create("vllm", config, replica="llm-0")
    >>> engine = ENGINES.create("tests.support.engines:SmokeFailpointEngine", config, replica="llm-1")
    """

    def __init__(self) -> None:
        self._targets: dict[str, str | type[Engine]] = {}

    def register(self, name: str, target: str | type[Engine]) -> None:
        self._targets[name] = target

    def names(self) -> list[str]:
        return sorted(self._targets)

    def resolve(self, name: str) -> type[Engine]:
        target = self._targets.get(name)
        if target is None:
            if ":" not in name:
                raise ValueError(
                    f"unknown engine backend {name!r}; known: {', '.join(self.names())} "
                    "(or an import path `package.module:Class`)"
                )
            target = name
        if isinstance(target, str):
            target = _import_engine(target)
        return target

    def create(self, name: str, config: LetheConfig, *, replica: str = "") -> Engine:
        return self.resolve(name)(config, replica=replica)


def _sha256_file(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _import_engine(path: str) -> type[Engine]:
    module_name, _, attr = path.partition(":")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"engine backend {path!r} cannot be imported: {exc}") from exc
    if not (isinstance(target, type) and issubclass(target, Engine)):
        raise ValueError(f"engine backend {path!r} is not an Engine subclass")
    return target


ENGINES = EngineRegistry()
ENGINES.register("vllm", "gateway.chat.engines.vllm:VLLMEngine")
