"""One LLM replica's logic: chat template, context checks and the engine stream (no Ray here)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from gateway.config import LetheConfig
from gateway.engines.base import (
    ENGINES,
    Engine,
    EngineInfo,
    GenerationChunk,
    PromptTooLongError,
    SamplingSpec,
)

log = logging.getLogger(__name__)


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


class ChatTemplate:
    """The model's own chat template and tokenizer, loaded from the model folder."""

    def __init__(self, model_path: str) -> None:
        from transformers import AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(model_path)
        if not getattr(self._tokenizer, "chat_template", None):
            raise ValueError(f"the tokenizer in {model_path} has no chat template")

    def render(self, messages: list[dict[str, str]]) -> str:
        return self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def count(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])


class LLMReplica:
    """Engine + chat template behind the calls the ingress makes (generate, health, info).

    >>> replica = LLMReplica(config, replica_id="llm#0")
    >>> await replica.start()
    >>> async for item in replica.generate([{"role": "user", "content": "Hi"}], {"max_tokens": 8}, "r1"):
    ...     print(item)
    """

    def __init__(self, config: LetheConfig, replica_id: str = "", engine: Engine | None = None) -> None:
        self._config = config
        self.replica_id = replica_id
        self._engine = engine if engine is not None else ENGINES.create(config.engine.backend, config)
        self._template: ChatTemplate | None = None

    async def start(self) -> None:
        self._template = ChatTemplate(str(self._config.model_path))
        await self._engine.start()

    def _sampling(self, prompt_tokens: int, params: dict[str, Any]) -> SamplingSpec:
        limit = self._config.engine.max_model_len
        room = limit - prompt_tokens
        if room < 1:
            raise PromptTooLongError(
                f"the prompt takes {prompt_tokens} tokens; this model's context is {limit} tokens"
            )
        requested = params.get("max_tokens")
        if requested is not None and requested > room:
            raise PromptTooLongError(
                f"max_tokens={requested} plus the prompt's {prompt_tokens} tokens exceeds "
                f"this model's context of {limit} tokens"
            )
        max_tokens = requested if requested is not None else min(self._config.engine.default_max_tokens, room)
        return SamplingSpec(
            max_tokens=max_tokens,
            temperature=1.0 if params.get("temperature") is None else params["temperature"],
            top_p=1.0 if params.get("top_p") is None else params["top_p"],
            stop=tuple(params.get("stop") or ()),
            seed=params.get("seed"),
        )

    async def generate(
        self, messages: list[dict[str, str]], params: dict[str, Any], request_id: str
    ) -> AsyncIterator[StreamStart | GenerationChunk]:
        if self._template is None:
            raise RuntimeError("replica not started")
        prompt = self._template.render(messages)
        prompt_tokens = self._template.count(prompt)
        sampling = self._sampling(prompt_tokens, params)
        info = self.info()
        yield StreamStart(info.model_version, self.replica_id, prompt_tokens, sampling.max_tokens)
        async for chunk in self._engine.generate(prompt, sampling, request_id):
            yield chunk

    async def health(self) -> bool:
        return await self._engine.health()

    def info(self) -> EngineInfo:
        return dataclasses.replace(self._engine.info(), replica=self.replica_id)

    async def reload_weights(self, path: str, model_version: str) -> EngineInfo:
        await self._engine.reload_weights(path, model_version)
        return self.info()

    async def shutdown(self) -> None:
        await self._engine.shutdown()
