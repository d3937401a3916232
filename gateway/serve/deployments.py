"""Ray Serve deployments (ingress + LLM) and the application builder used by `lethe serve`."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from gateway.observability import metrics
from gateway.config import LetheConfig
from gateway.chat.engines.base import EngineInfo, GenerationChunk
from gateway.chat.replica import LLMReplica, StreamStart, SwapSettings

log = logging.getLogger(__name__)

APP_NAME = "lethe"
LLM_DEPLOYMENT = "LLMServer"
INGRESS_DEPLOYMENT = "Gateway"
AUTHORITY_DEPLOYMENT = "ForgetAuthority"
JOBS_DEPLOYMENT = "UnlearnJobs"
VERSIONS_DEPLOYMENT = "ModelVersions"


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
        self._config = config
        self._replica = LLMReplica(_on_serving_version(config), replica_id=f"llm-{rank}")
        await self._replica.start()
        metrics.set_serving_version(self._replica.info().model_version)

    async def replica_state(self) -> dict[str, Any]:
        return self._replica.state()

    async def swap_if(self, replica: str, path: str, version: str) -> dict[str, Any] | None:
        """Broadcast target of a rolling swap: only the named replica acts, the others answer None."""
        if replica != self._replica.replica_id:
            return None
        swap = self._config.swap
        failpoint = self._config.home / "failpoints" / f"smoke-fail-{replica}"
        settings = SwapSettings(
            drain_timeout_s=swap.drain_timeout_s, smoke_prompt=swap.smoke_prompt,
            smoke_max_tokens=swap.smoke_max_tokens, smoke_expect=swap.smoke_expect,
            fail_smoke=failpoint.exists(),
        )
        try:
            return await self._replica.swap(path, version, settings)
        finally:
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


def _on_serving_version(config: LetheConfig) -> LetheConfig:
    """The config this replica starts from: the promoted weight version when there is one, so a
    restarted or added replica serves what the others serve before it takes traffic."""
    from gateway.ledger import Ledger
    from gateway.weights.store import VersionInvalidError, serving_record, validate_candidate

    base = config.model_path
    ledger = Ledger.open(config.ledger_url)
    try:
        record = serving_record(ledger, base)
    finally:
        ledger.close()
    if Path(record.path) == Path(base):
        return config
    try:
        validate_candidate(base, record)
    except VersionInvalidError as exc:
        # Never load a tampered version; the base model (guard on) is the safe fallback.
        log.error("serving version %s fails verification (%s); starting on the base model", record.id, exc)
        return config
    engine = config.engine.model_copy(update={"model": record.path, "served_model_name": config.served_model_name})
    return config.model_copy(update={"engine": engine})


class ServeFleet:
    """The LLM replicas for the SwapController, reached by Serve broadcasts (every live replica
    gets the call; `swap_if` acts only on the named one)."""

    def __init__(self, handle: DeploymentHandle, swap_timeout_s: float) -> None:
        self._handle = handle
        self._swap_timeout_s = swap_timeout_s

    async def states(self) -> list[dict[str, Any]]:
        results = await self._handle.broadcast("replica_state").results_async(timeout_s=60, return_exceptions=True)
        return [r for r in results if isinstance(r, dict)]

    async def swap(self, replica: str, path: str, version: str) -> dict[str, Any]:
        results = await self._handle.broadcast("swap_if", replica, path, version).results_async(
            timeout_s=self._swap_timeout_s, return_exceptions=True
        )
        for result in results:
            if isinstance(result, dict):
                return result
        errors = [r for r in results if isinstance(r, BaseException)]
        mine = [e for e in errors if replica in str(e)]
        if mine or errors:
            raise (mine or errors)[0]
        raise RuntimeError(f"replica {replica} is no longer running")


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
    from gateway.forget.sync import SyncTiming

    poll = config.guard.poll_timeout_s
    return SyncTiming(poll_timeout_s=poll, ack_timeout_s=config.guard.ack_timeout_s,
                      lease_s=poll * 4, fence_after_s=poll * 3)


@serve.deployment(name=AUTHORITY_DEPLOYMENT)
class ForgetAuthority:
    """The one writer of forget requests and the source of forget-index versions (see index_sync)."""

    async def __init__(self, config_json: str) -> None:
        import ray

        from gateway.forget.certificates import CertificateSigner
        from gateway.forget.authority import ForgetRecords
        from gateway.guard.embedder import MiniLMEmbedder
        from gateway.forget.sync import IndexAuthority

        config = LetheConfig.model_validate_json(config_json)
        config.home.mkdir(parents=True, exist_ok=True)
        self._records = ForgetRecords.open(config.ledger_url)
        self._signer = CertificateSigner(config.home / "keys")
        self._probe_report = config.home / "probes" / "latest.json"
        self._model_path = config.model_path
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

    async def certificate(self, forget_id: str) -> dict[str, Any] | None:
        try:  # the leakage probes' latest report, written by the ModelVersions deployment
            leakage = json.loads(self._probe_report.read_text())
        except (OSError, ValueError):
            leakage = None
        from gateway.weights.store import serving_record

        serving = serving_record(self._records.ledger, self._model_path)  # the base model until a promotion
        return self._records.certificate(self._signer, forget_id, leakage=leakage, serving=serving)

    async def certificate_key(self) -> dict[str, str]:
        return self._signer.public_key()

    async def audit(self, kind: str | None, subject_id: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        return self._records.audit(kind, subject_id, limit, offset)

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
    """The one JobManager: launches each job as a Ray task and records it in the ledger; with
    `swap.auto_promote`, a published version is promoted through ModelVersions."""

    def __init__(self, config_json: str, versions: DeploymentHandle | None = None) -> None:
        from gateway.jobs.manager import JobManager, JobSettings
        from gateway.ledger import Ledger

        config = LetheConfig.model_validate_json(config_json)
        settings = JobSettings(
            ledger_url=config.ledger_url, home=str(config.home), base_model_dir=str(config.model_path),
            num_cpus=config.unlearn.num_cpus, num_gpus=config.unlearn.num_gpus, threads=config.unlearn.threads,
        )
        promote = None
        if versions is not None and config.swap.auto_promote:
            client = HandleClient(versions)

            async def promote(version_id: str, job_id: str) -> None:
                await client.promote(version_id, f"job:{job_id}")

        self._manager = JobManager(Ledger.open(config.ledger_url), settings, on_published=promote)

    async def submit(self, method: str, forget_ids: list[str] | None, params: dict[str, Any],
                     gates: dict[str, Any]) -> dict[str, Any]:
        return await self._manager.submit(method, forget_ids, params, gates)

    async def get(self, job_id: str) -> dict[str, Any]:
        return self._manager.get(job_id)

    async def list(self, state: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        return self._manager.list(state, limit, offset)

    async def cancel(self, job_id: str) -> dict[str, Any]:
        return await self._manager.cancel(job_id)


@serve.deployment(name=VERSIONS_DEPLOYMENT)
class ModelVersions:
    """The one SwapController: which weight version serves, rolling swaps, rollback, import."""

    RECONCILE_PERIOD_S = 30.0

    async def __init__(self, config_json: str, llm: DeploymentHandle) -> None:
        from gateway.guard.embedder import MiniLMEmbedder
        from gateway.ledger import Ledger
        from gateway.weights.base_models import model_version
        from gateway.weights.probes import LeakageProber, export_report
        from gateway.weights.controller import SwapController, SwapHooks

        config = LetheConfig.model_validate_json(config_json)
        self._config = config
        ledger = Ledger.open(config.ledger_url)
        probes = config.probes
        self._prober = LeakageProber(
            ledger, ServeLLMClient(llm), lambda: MiniLMEmbedder(threads=config.guard.embed_threads),
            state_dir=config.home / "probes", base_version=model_version(config.model_path),
            retain_file=probes.retain_file, max_tokens=probes.max_tokens, concurrency=probes.concurrency,
            on_report=export_report,
        )
        self._tasks: set[asyncio.Task[Any]] = set()

        def on_swap(result: str, seconds: float, version: str) -> None:
            metrics.record_swap(result, seconds)
            if result == "ok" and probes.enabled and probes.after_swap:
                self._background(self._probe(f"after the swap to {version}"))

        fleet = ServeFleet(llm, swap_timeout_s=config.swap.drain_timeout_s + 600)
        self._controller = SwapController(ledger, fleet, base_dir=config.model_path,
                                          versions_dir=config.versions_dir, hooks=SwapHooks(on_result=on_swap))
        self._background(self._reconcile_forever())
        if probes.enabled and probes.interval_s > 0:
            self._background(self._probe_forever(probes.interval_s))

    def _background(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _probe(self, reason: str) -> None:
        try:
            await self._prober.run(reason=reason)
        except Exception as exc:
            log.warning("leakage probe run (%s) failed: %s", reason, exc)

    async def _probe_forever(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await self._probe("periodic")

    async def _reconcile_forever(self) -> None:
        # A replica that restarted while a swap was moving the pointer may start on the old version.
        while True:
            await asyncio.sleep(self.RECONCILE_PERIOD_S)
            try:
                await self._controller.reconcile()
            except Exception as exc:  # e.g. no LLM replica up yet: try again next period
                log.warning("reconciling replica versions failed: %s", exc)

    async def leakage(self) -> dict[str, Any] | None:
        return self._prober.latest

    async def run_probe(self) -> dict[str, Any]:
        from gateway.weights.controller import SwapConflictError

        if self._prober.running:
            raise SwapConflictError("a probe run is in progress; GET /v1/admin/leakage shows the last report")
        return await self._prober.run(reason="requested")

    async def list(self) -> dict[str, Any]:
        return await self._controller.list()

    async def history(self, limit: int) -> list[dict[str, Any]]:
        return self._controller.history(limit)

    async def promote(self, version_id: str, actor: str) -> dict[str, Any]:
        return await self._controller.promote(version_id, actor=actor)

    async def rollback(self, actor: str) -> dict[str, Any]:
        return await self._controller.rollback(actor=actor)

    async def import_version(self, path: str, actor: str, note: str | None) -> dict[str, Any]:
        return await self._controller.import_version(path, actor=actor, note=note)


@serve.ingress()
class Gateway:
    """The HTTP ingress: the FastAPI app, built inside the replica from the config, with its own
    copy of the forget index kept current by the authority."""

    async def __init__(
        self, llm: DeploymentHandle, authority: DeploymentHandle, jobs: DeploymentHandle,
        versions: DeploymentHandle, config_json: str,
    ) -> None:
        import ray

        from gateway.guard.embedder import MiniLMEmbedder
        from gateway.guard.index import ForgetIndex
        from gateway.forget.sync import IndexFollower

        self._config = LetheConfig.model_validate_json(config_json)
        self._llm = llm
        self._authority = HandleClient(authority)
        self._jobs = HandleClient(jobs)
        self._versions = HandleClient(versions)
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
        from gateway.http.app import create_app
        from gateway.forget.service import ForgetService
        from gateway.chat.service import ChatService

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
        from gateway.jobs.service import UnlearnService
        from gateway.weights.service import VersionsService

        forget = ForgetService(self._authority, self._follower)
        return create_app(
            service, forget=forget, jobs=UnlearnService(self._jobs), versions=VersionsService(self._versions),
            admin_token=self._config.admin_token, max_body_bytes=self._config.server.max_body_bytes,
        )

    async def check_health(self) -> None:
        reason = self._follower.out_of_service_reason()
        if reason is not None and self._follower.evicted:
            raise RuntimeError(reason)  # Serve replaces an evicted replica


GatewayDeployment = serve.deployment(name=INGRESS_DEPLOYMENT)(Gateway)


def app_builder(args: dict[str, str]) -> serve.Application:
    """Entry point for `serve run gateway.serve.deployments:app_builder config=FILE` and KubeRay's
    `serveConfigV2` (`import_path: gateway.serve.deployments:app_builder`); LETHE_* variables apply too."""
    from gateway.config import load_config

    return build_app(load_config(args.get("config")))


def build_app(config: LetheConfig) -> serve.Application:
    """The Serve application for `config`: ingress replicas in front of LLM replicas."""
    from gateway.chat.engines.vllm import ENGINE_ENV

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
    versions = ModelVersions.options(
        num_replicas=1, max_ongoing_requests=1000, ray_actor_options={"num_cpus": 0}
    ).bind(config_json, llm)
    jobs = UnlearnJobs.options(
        num_replicas=1, max_ongoing_requests=1000, ray_actor_options={"num_cpus": 0}
    ).bind(config_json, versions)
    ingress = GatewayDeployment.options(
        num_replicas=server.ingress_replicas,
        max_ongoing_requests=1000,
        # The ingress only parses, routes and checks text: it must not take a core from an engine.
        ray_actor_options={"num_cpus": 0},
    ).bind(llm, authority, jobs, versions, config_json)
    return ingress
