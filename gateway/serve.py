"""Ray Serve deployments (ingress + LLM) and the application builder used by `lethe serve`."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from gateway import metrics
from gateway.config import LetheConfig
from gateway.engines.base import EngineInfo, GenerationChunk
from gateway.llm_server import LLMReplica, StreamStart

log = logging.getLogger(__name__)

APP_NAME = "lethe"
LLM_DEPLOYMENT = "LLMServer"
INGRESS_DEPLOYMENT = "Gateway"
AUTHORITY_DEPLOYMENT = "ForgetAuthority"
JOBS_DEPLOYMENT = "UnlearnJobs"


def _bind_cpu_threads(config: LetheConfig, rank: int) -> None:
    """Pin each CPU engine to its own cores: replicas sharing a small machine otherwise slow each
    other down several-fold (measured ~5x on 2 cores)."""
    threads = config.engine.cpu_threads
    cores = os.cpu_count() or 1
    first = (rank * threads) % cores
    span = [str((first + i) % cores) for i in range(threads)]
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(span) if threads > 1 else span[0])
    import torch

    torch.set_num_threads(threads)


@serve.deployment(name=LLM_DEPLOYMENT)
class LLMServer:
    """One replica of the model: an engine (vLLM by default) plus the model's chat template."""

    async def __init__(self, config_json: str) -> None:
        config = LetheConfig.model_validate_json(config_json)
        context = serve.get_replica_context()
        rank = getattr(getattr(context, "rank", None), "rank", 0) or 0
        if config.server.llm_num_gpus == 0:
            _bind_cpu_threads(config, rank)
        self._replica = LLMReplica(config, replica_id=f"llm-{rank}")
        await self._replica.start()
        metrics.set_serving_version(self._replica.info().model_version)

    async def generate(
        self, messages: list[dict[str, str]], params: dict[str, Any], request_id: str
    ) -> AsyncIterator[StreamStart | GenerationChunk]:
        async for item in self._replica.generate(messages, params, request_id):
            yield item

    async def health(self) -> bool:
        return await self._replica.health()

    async def info(self) -> EngineInfo:
        return self._replica.info()

    async def check_health(self) -> None:
        # Serve calls this periodically; raising makes it replace the replica.
        if not await self._replica.health():
            raise RuntimeError("engine unhealthy")

    async def __del__(self) -> None:
        await self._replica.shutdown()


class ServeLLMClient:
    """`LLMClient` over a Serve handle: one call routes to one LLM replica."""

    def __init__(self, handle: DeploymentHandle) -> None:
        self._handle = handle
        self._stream = handle.options(stream=True)

    def generate(
        self, messages: list[dict[str, str]], params: dict[str, Any], request_id: str
    ) -> AsyncIterator[StreamStart | GenerationChunk]:
        return self._stream.generate.remote(messages, params, request_id)

    async def health(self) -> bool:
        return await self._handle.health.remote()

    async def info(self) -> EngineInfo:
        return await self._handle.info.remote()


def _sync_timing(config: LetheConfig):
    from gateway.index_sync import SyncTiming

    poll = config.guard.poll_timeout_s
    return SyncTiming(poll_timeout_s=poll, ack_timeout_s=config.guard.ack_timeout_s,
                      lease_s=poll * 4, fence_after_s=poll * 3)


@serve.deployment(name=AUTHORITY_DEPLOYMENT)
class ForgetAuthority:
    """The one writer of forget requests and the source of forget-index versions (see index_sync)."""

    async def __init__(self, config_json: str) -> None:
        import ray

        from gateway.forget_records import ForgetRecords
        from gateway.guard.embedder import MiniLMEmbedder
        from gateway.index_sync import IndexAuthority

        config = LetheConfig.model_validate_json(config_json)
        config.home.mkdir(parents=True, exist_ok=True)
        self._records = ForgetRecords.open(config.ledger_url)
        embedder = MiniLMEmbedder(threads=config.guard.embed_threads)
        embedder.encode(["warm up"])  # load the model now, not on the first forget request
        self._authority = IndexAuthority(
            self._records.ledger, embedder, timing=_sync_timing(config), kill_actor=lambda a: ray.kill(a)
        )

    async def add(self, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._records.add(self._authority, payload)

    async def get(self, forget_id: str) -> dict[str, Any] | None:
        return self._records.get(forget_id)

    async def list(self, status: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        return self._records.list(status, limit, offset)

    async def poll(self, follower_id: str, known: int, actor: Any = None):
        return await self._authority.poll(follower_id, known, actor)

    async def ack(self, follower_id: str, version: int) -> bool:
        return await self._authority.ack(follower_id, version)

    async def followers(self) -> dict[str, dict[str, Any]]:
        return self._authority.followers()


class HandleClient:
    """Awaitable method calls over a Serve handle: `await HandleClient(h).get(x)` is
    `await h.get.remote(x)`. Satisfies the ForgetAuthorityAPI, AuthorityClient and JobsAPI protocols."""

    def __init__(self, handle: DeploymentHandle) -> None:
        self._handle = handle

    def __getattr__(self, method: str):
        remote = getattr(self._handle, method).remote

        async def call(*args: Any) -> Any:
            return await remote(*args)

        return call


@serve.deployment(name=JOBS_DEPLOYMENT)
class UnlearnJobs:
    """The one JobManager: launches each job as a Ray task and records it in the ledger."""

    def __init__(self, config_json: str) -> None:
        from gateway.jobs import JobManager, JobSettings
        from gateway.ledger import Ledger

        config = LetheConfig.model_validate_json(config_json)
        settings = JobSettings(
            ledger_url=config.ledger_url, home=str(config.home), base_model_dir=str(config.model_path),
            num_cpus=config.unlearn.num_cpus, num_gpus=config.unlearn.num_gpus, threads=config.unlearn.threads,
        )
        self._manager = JobManager(Ledger.open(config.ledger_url), settings)

    async def submit(self, method: str, forget_ids: list[str] | None, params: dict[str, Any],
                     gates: dict[str, Any]) -> dict[str, Any]:
        return await self._manager.submit(method, forget_ids, params, gates)

    async def get(self, job_id: str) -> dict[str, Any]:
        return self._manager.get(job_id)

    async def list(self, state: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        return self._manager.list(state, limit, offset)

    async def cancel(self, job_id: str) -> dict[str, Any]:
        return await self._manager.cancel(job_id)


@serve.ingress()
class Gateway:
    """The HTTP ingress: the FastAPI app, built inside the replica from the config, with its own
    copy of the forget index kept current by the authority."""

    async def __init__(
        self, llm: DeploymentHandle, authority: DeploymentHandle, jobs: DeploymentHandle, config_json: str
    ) -> None:
        import ray

        from gateway.guard.embedder import MiniLMEmbedder
        from gateway.guard.index import ForgetIndex
        from gateway.index_sync import IndexFollower

        self._config = LetheConfig.model_validate_json(config_json)
        self._llm = llm
        self._authority = HandleClient(authority)
        self._jobs = HandleClient(jobs)
        embedder = MiniLMEmbedder(threads=self._config.guard.embed_threads)
        embedder.encode(["warm up"])  # load the model before taking traffic
        context = serve.get_replica_context()
        self._follower = IndexFollower(
            self._authority,
            ForgetIndex.empty(embedder),
            timing=_sync_timing(self._config),
            actor=ray.get_runtime_context().current_actor,
            follower_id=f"ingress-{context.replica_id.unique_id}",
        )
        # Not ready until the index is current: a replica never serves before it enforces.
        await self._follower.bootstrap()
        self._follower.start()

    def __serve_build_asgi_app__(self):
        from gateway.app import create_app
        from gateway.forgetting import ForgetService
        from gateway.service import ChatService

        if not self._config.guard.enabled:
            log.warning("the guard is OFF (guard.enabled=false): forgotten content is not enforced")
        service = ChatService(
            ServeLLMClient(self._llm),
            self._config.served_model_name,
            guard=self._follower if self._config.guard.enabled else None,
            prompt_mode=self._config.guard.prompt_mode,
            ingress_id=self._follower.follower_id,
            ready_timeout_s=self._config.server.ready_timeout_s,
        )
        from gateway.unlearning import UnlearnService

        forget = ForgetService(self._authority, self._follower)
        return create_app(
            service, forget=forget, jobs=UnlearnService(self._jobs), admin_token=self._config.admin_token,
            max_body_bytes=self._config.server.max_body_bytes,
        )

    async def check_health(self) -> None:
        reason = self._follower.out_of_service_reason()
        if reason is not None and self._follower.evicted:
            raise RuntimeError(reason)  # Serve replaces an evicted replica


GatewayDeployment = serve.deployment(name=INGRESS_DEPLOYMENT)(Gateway)


def app_builder(args: dict[str, str]) -> serve.Application:
    """Entry point for `serve run gateway.serve:app_builder config=FILE` and KubeRay's
    `serveConfigV2` (`import_path: gateway.serve:app_builder`); LETHE_* variables apply too."""
    from gateway.config import load_config

    return build_app(load_config(args.get("config")))


def build_app(config: LetheConfig) -> serve.Application:
    """The Serve application for `config`: ingress replicas in front of LLM replicas."""
    from gateway.engines.vllm import ENGINE_ENV

    config_json = config.model_dump_json()
    server = config.server
    llm = LLMServer.options(
        num_replicas=server.llm_replicas,
        # Admit as many requests as the engine batches; Serve's default (5) would queue them here.
        max_ongoing_requests=config.engine.max_num_seqs,
        ray_actor_options={
            "num_cpus": server.llm_num_cpus,
            "num_gpus": server.llm_num_gpus,
            "runtime_env": {"env_vars": dict(ENGINE_ENV)},
        },
        health_check_period_s=10,
        health_check_timeout_s=30,
    ).bind(config_json)
    authority = ForgetAuthority.options(
        num_replicas=1,
        # Every ingress replica keeps a long-poll open here: admit them all.
        max_ongoing_requests=10_000,
        ray_actor_options={"num_cpus": 0},
    ).bind(config_json)
    jobs = UnlearnJobs.options(
        num_replicas=1, max_ongoing_requests=1000, ray_actor_options={"num_cpus": 0}
    ).bind(config_json)
    ingress = GatewayDeployment.options(
        num_replicas=server.ingress_replicas,
        max_ongoing_requests=1000,
        # The ingress only parses, routes and checks text: it must not take a core from an engine.
        ray_actor_options={"num_cpus": 0},
    ).bind(llm, authority, jobs, config_json)
    return ingress
