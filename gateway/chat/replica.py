"""One LLM replica's logic: chat template, context checks and the engine stream (no Ray here)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from gateway.chat.engines.base import (
    ENGINES,
    Engine,
    EngineError,
    EngineInfo,
    GenerationChunk,
    PromptTooLongError,
    ReplicaSwappingError,
    ReplicaUnverifiedError,
    SamplingRequest,
    SamplingSpec,
    StreamStart,
)
from gateway.config import LetheConfig

log = logging.getLogger(__name__)


class SwapError(RuntimeError):
    """A replica could not take new weights; it kept (or restored) its previous ones."""


@dataclass(frozen=True)
class SwapSettings:
    """What one replica's swap needs (from the `swap` config section)."""

    drain_timeout_s: float = 120.0
    smoke_prompt: str = "What is the capital of France?"
    smoke_max_tokens: int = 4
    smoke_expect: str | None = None


# Swap tickets a replica remembers: a controller's wait for a phase that arrives after the swap
# ended still finds it reached.
_TICKETS_KEPT = 64


class SwapCalledOffError(SwapError):
    """The controller called a held swap off before it loaded (another replica failed): the replica
    reopened on its old weights."""


@dataclass
class SwapTicket:
    """How far one swap has come, for the controller that runs several replicas' swaps at once.

    `drained`: no request in flight (or the swap ended); `loaded`: the new weights are in (or the swap
    ended); `go`: the controller let a held swap load (`load` False: called off).
    """

    drained: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    loaded: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    go: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    load: bool = True

    def end(self) -> None:
        self.drained.set()
        self.loaded.set()


class ChatTemplate:
    """The model's own chat template and tokenizer, loaded from the model folder."""

    def __init__(self, model_path: str) -> None:
        from transformers import AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(model_path)
        if not getattr(self._tokenizer, "chat_template", None):
            raise ValueError(f"the tokenizer in {model_path} has no chat template")

    def render(self, messages: list[dict[str, str]]) -> str:
        text = self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if not isinstance(text, str):  # tokenize=False returns the text; anything else is a tokenizer bug
            raise TypeError(f"the chat template rendered {type(text).__name__}, not text")
        return text

    def count(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])


class LLMReplica:
    """Engine + chat template behind the calls the ingress makes (generate, health, info).

    >>> replica = LLMReplica(config, replica_id="llm#0")
    >>> await replica.start()
    >>> async for item in replica.generate([{"role": "user", "content": "Hi"}], SamplingRequest(max_tokens=8), "r1"):
    ...     print(item)
    """

    def __init__(
        self, config: LetheConfig, replica_id: str = "", engine: Engine | None = None, *, unverified: str | None = None
    ) -> None:
        self._config = config
        self.replica_id = replica_id
        # Why this replica refuses traffic: the serving weight version failed verification, and it never
        # serves other weights instead. Not ready until a swap onto a verified version succeeds.
        self.unverified = unverified
        self._engine = (
            engine if engine is not None else ENGINES.create(config.engine.backend, config, replica=replica_id)
        )
        self._template: ChatTemplate | None = None
        # Swap gate: while closed, new requests are refused (the ingress retries another replica)
        # and the swap waits for the requests in flight, so each request runs on one version.
        self._admitting = True
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._swap_lock = asyncio.Lock()
        self._staged: tuple[str, float] | None = None  # (path, seconds it took) staged for the next swap
        self._tickets: dict[str, SwapTicket] = {}

    async def start(self) -> None:
        self._template = ChatTemplate(str(self._config.model_path))
        await self._engine.start()

    def _sampling(self, prompt_tokens: int, asked: SamplingRequest) -> SamplingSpec:
        limit = self._config.engine.max_model_len
        room = limit - prompt_tokens
        if room < 1:
            raise PromptTooLongError(f"the prompt takes {prompt_tokens} tokens; this model's context is {limit} tokens")
        requested = asked.max_tokens
        if requested is not None and requested > room:
            raise PromptTooLongError(
                f"max_tokens={requested} plus the prompt's {prompt_tokens} tokens exceeds "
                f"this model's context of {limit} tokens"
            )
        max_tokens = requested if requested is not None else min(self._config.engine.default_max_tokens, room)
        return SamplingSpec(
            max_tokens=max_tokens,
            temperature=1.0 if asked.temperature is None else asked.temperature,
            top_p=1.0 if asked.top_p is None else asked.top_p,
            stop=asked.stop,
            seed=asked.seed,
        )

    async def generate(
        self, messages: list[dict[str, str]], sampling: SamplingRequest, request_id: str
    ) -> AsyncIterator[StreamStart | GenerationChunk]:
        if self._template is None:
            raise RuntimeError("replica not started")
        if self.unverified is not None:
            raise ReplicaUnverifiedError(f"replica {self.replica_id} refuses traffic: {self.unverified}")
        if not self._admitting:
            raise ReplicaSwappingError(f"replica {self.replica_id} is swapping weights")
        self._inflight += 1  # no await between the check and here: a swap sees this request
        self._idle.clear()
        try:
            prompt = self._template.render(messages)
            prompt_tokens = self._template.count(prompt)
            spec = self._sampling(prompt_tokens, sampling)
            info = self.info()
            yield StreamStart(info.model_version, self.replica_id, prompt_tokens, spec.max_tokens)
            async for chunk in self._engine.generate(prompt, spec, request_id):
                yield chunk
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()

    async def health(self) -> bool:
        """Ready: the engine answers and serves a verified version."""
        return self.unverified is None and await self._engine.health()

    async def alive(self) -> bool:
        """The engine answers (an unverified replica is alive: restarting it would not verify anything)."""
        return await self._engine.health()

    def info(self) -> EngineInfo:
        return dataclasses.replace(self._engine.info(), replica=self.replica_id)

    async def reload_weights(self, path: str, model_version: str) -> EngineInfo:
        await self._engine.reload_weights(path, model_version)
        return self.info()

    async def stage(self, path: str, model_version: str, digests: dict[str, str] | None = None) -> dict[str, Any]:
        """Read the weights in `path` into memory and check them against `digests` (sha256 by file name;
        None: the version's manifest on disk) while this replica keeps serving (the swap that follows
        then drains only for the copy into the engine). Changes nothing served."""
        if self._swap_lock.locked():
            raise SwapError(f"replica {self.replica_id}: another swap is in progress")
        started = time.monotonic()
        self._staged = None
        try:
            await self._engine.stage_weights(path, model_version, digests)
        except Exception as exc:
            await self.discard_staged()
            raise SwapError(f"replica {self.replica_id}: {_reason(exc)}; weights not changed") from None
        seconds = time.monotonic() - started
        self._staged = (path, seconds)
        return {"replica": self.replica_id, "version": model_version, "stage_s": round(seconds, 3)}

    async def discard_staged(self) -> None:
        """Free staged weights no swap will load (a refused or failed promotion)."""
        self._staged = None
        try:
            await self._engine.discard_staged()
        except Exception as exc:  # only memory is at stake; the next stage replaces it anyway
            log.warning("replica %s could not free its staged weights: %s", self.replica_id, exc)

    async def wait_phase(self, ticket: str, phase: str, timeout_s: float) -> None:
        """Return once the swap named `ticket` has reached `phase` ("drained" or "loaded") or ended."""
        event = self._ticket(ticket).drained if phase == "drained" else self._ticket(ticket).loaded
        await asyncio.wait_for(event.wait(), timeout_s)

    def proceed(self, ticket: str, load: bool = True) -> None:
        """Let the held swap `ticket` load its weights, or (`load` False) call it off."""
        entry = self._ticket(ticket)
        entry.load = load
        entry.go.set()

    def _ticket(self, ticket: str) -> SwapTicket:
        entry = self._tickets.get(ticket)
        if entry is None:
            entry = self._tickets[ticket] = SwapTicket()
            ended = [t for t, e in self._tickets.items() if e.loaded.is_set()]  # oldest first
            for old in ended[: len(self._tickets) - _TICKETS_KEPT]:
                del self._tickets[old]
        return entry

    async def swap(
        self,
        path: str,
        model_version: str,
        settings: SwapSettings,
        *,
        ticket: str | None = None,
        hold: bool = False,
        digests: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Stage `path` (unless `stage` did; checked against `digests`), drain, load, smoke-test, reopen; on
        any failure restore the previous weights. `ticket` names this swap for `wait_phase` and `proceed`;
        with `hold`, the drained replica waits for `proceed` before it loads (at most `drain_timeout_s`).

        Returns timings; raises SwapError (after restoring) when the new weights can't serve.
        """
        entry = self._ticket(ticket) if ticket is not None else None
        if hold and entry is None:
            raise ValueError("a held swap needs a ticket")
        try:
            return await self._swap(path, model_version, settings, entry if hold else None, entry, digests)
        finally:
            if entry is not None:
                entry.end()

    async def _swap(
        self,
        path: str,
        model_version: str,
        settings: SwapSettings,
        hold: SwapTicket | None,
        progress: SwapTicket | None,
        digests: dict[str, str] | None,
    ) -> dict[str, Any]:
        # Staged first, while still serving: the replica stops admitting only once its weights are in memory.
        if self._staged is None or self._staged[0] != path:
            await self.stage(path, model_version, digests)
        stage_s = self._staged[1] if self._staged is not None else 0.0
        if self._swap_lock.locked():
            raise SwapError(f"replica {self.replica_id}: another swap is in progress")
        async with self._swap_lock:
            self._staged = None  # the engine consumes it in reload_weights
            started = time.monotonic()
            previous = self.info()
            self._admitting = False
            try:
                try:
                    await asyncio.wait_for(self._idle.wait(), settings.drain_timeout_s)
                except TimeoutError:
                    await self.discard_staged()
                    raise SwapError(
                        f"replica {self.replica_id}: {self._inflight} request(s) still running after "
                        f"{settings.drain_timeout_s:g} s; weights not changed"
                    ) from None
                drained = time.monotonic()
                if progress is not None:
                    progress.drained.set()
                if hold is not None:
                    await self._held(hold, settings.drain_timeout_s)
                go = time.monotonic()
                try:
                    await self._engine.reload_weights(path, model_version)
                    loaded = time.monotonic()
                    if progress is not None:
                        progress.loaded.set()
                    answer = await self.smoke_test(settings)
                except Exception as exc:
                    reason = _reason(exc)
                    log.error(
                        "swap to %s failed on %s: %s; restoring %s",
                        model_version,
                        self.replica_id,
                        reason,
                        previous.model_version,
                    )
                    await self._engine.reload_weights(previous.model_path, previous.model_version)
                    raise SwapError(f"replica {self.replica_id}: {reason}; restored {previous.model_version}") from None
            finally:
                self._admitting = True
            self.unverified = None  # the controller verified `path` before it asked for this swap
            done = time.monotonic()
            return {
                "replica": self.replica_id,
                "version": model_version,
                "previous": previous.model_version,
                "stage_s": round(stage_s, 3),
                "drain_s": round(drained - started, 3),
                "wait_s": round(go - drained, 3),  # drained, waiting for its turn to load
                "load_s": round(loaded - go, 3),
                "smoke_s": round(done - loaded, 3),
                "total_s": round(done - started, 3),
                "smoke_answer": answer[:200],
            }

    async def _held(self, ticket: SwapTicket, timeout_s: float) -> None:
        """Drained, wait for the controller's go; called off or no go in time: nothing changed."""
        try:
            await asyncio.wait_for(ticket.go.wait(), timeout_s)
        except TimeoutError:
            await self.discard_staged()
            raise SwapError(
                f"replica {self.replica_id}: no go to load within {timeout_s:g} s; weights not changed"
            ) from None
        if not ticket.load:
            await self.discard_staged()
            raise SwapCalledOffError(f"replica {self.replica_id}: swap called off; weights not changed")

    async def smoke_test(self, settings: SwapSettings) -> str:
        """A fixed prompt, greedy: the weights must give a non-empty (and, if configured, expected) answer."""
        if self._template is None:
            raise RuntimeError("replica not started")
        prompt = self._template.render([{"role": "user", "content": settings.smoke_prompt}])
        sampling = SamplingSpec(max_tokens=settings.smoke_max_tokens, temperature=0.0)
        try:
            parts = [c.text async for c in self._engine.generate(prompt, sampling, f"smoke-{uuid.uuid4().hex}")]
        except EngineError as exc:  # the new weights cannot generate at all: a failed smoke test
            raise SwapError(f"smoke test failed: {exc}") from exc
        answer = "".join(parts)
        if not any(ch.isalnum() for ch in answer):
            raise SwapError(f"smoke test failed: empty answer {answer!r}")
        if settings.smoke_expect and not re.search(settings.smoke_expect, answer):
            raise SwapError(f"smoke test failed: {answer[:80]!r} does not match {settings.smoke_expect!r}")
        return answer

    def state(self) -> dict[str, Any]:
        info = self.info()
        return {
            "replica": self.replica_id,
            "version": info.model_version,
            "path": info.model_path,
            "swapping": self._swap_lock.locked(),
            "staged": self._staged[0] if self._staged is not None else None,
            "inflight": self._inflight,
            "verified": self.unverified is None,
        }

    async def shutdown(self) -> None:
        await self._engine.shutdown()


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, SwapError) else f"{type(exc).__name__}: {exc}"
