"""The Ray Serve deployment classes: LLM replicas, forget authority, job manager, weight versions, ingress.

Each class is a thin shell: it builds its Ray-free core from the config (LLMReplica, IndexAuthority and
ForgetRecords, JobManager, SwapController and LeakageProber, the FastAPI app with an IndexFollower),
reaches the other deployments through the typed clients of `gateway.serve.handles`, and records its
metrics through Ray's agent. `gateway.serve.builder` decides how many of each run and on what.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import os
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import ray
from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from gateway.chat.engines.base import EngineInfo, GenerationChunk, SamplingRequest, StreamStart, model_version
from gateway.chat.replica import LLMReplica, SwapSettings
from gateway.chat.service import ChatService
from gateway.config import LetheConfig, RetentionConfig
from gateway.forget.authority import (
    ForgetRecords,
    IndexAuthority,
    IndexUpdate,
    SyncTiming,
    rebuild_stale_artifacts,
)
from gateway.forget.certificates import CertificateSigner, guard_state
from gateway.forget.follower import IndexFollower
from gateway.forget.service import ForgetService
from gateway.forget.shredding import shred_due
from gateway.guard.embedder import MiniLMEmbedder
from gateway.guard.index import ForgetIndex
from gateway.guard.keyed import TermHasher
from gateway.home import private_dir
from gateway.http.app import create_app
from gateway.http.auth import AccessControl, AccessSettings
from gateway.jobs.manager import JobManager, JobSettings
from gateway.jobs.service import UnlearnService
from gateway.ledger import Ledger
from gateway.ledger.actors import Actor, acting_as
from gateway.ledger.keys import KeyStore
from gateway.ledger.states import ForgetStatus, JobState
from gateway.ledger.vault import Vault
from gateway.observability import metrics
from gateway.serve.handles import AuthorityHandle, JobsHandle, LLMHandle, VersionsHandle
from gateway.serve.jobs import RayJobLauncher
from gateway.serve.logs import configure_replica_logs
from gateway.serve.metrics import configure_ray_metrics
from gateway.weights.controller import SwapConflictError, SwapController, SwapHooks
from gateway.weights.probes import LeakageProber, export_report
from gateway.weights.service import VersionsService
from gateway.weights.store import VersionInvalidError, redact_manifests, serving_record, validate_candidate

log = logging.getLogger(__name__)

# How long a certificate waits for ModelVersions' latest leakage report before it goes without one.
LEAKAGE_TIMEOUT_S = 3.0


def open_ledger(config: LetheConfig) -> Ledger:
    """The ledger, with the master key from the environment or under `config.home` (gateway.ledger.vault)."""
    return Ledger.open(config.ledger_url, vault=Vault.from_environment(config.home))


def _guard_hasher(config: LetheConfig) -> TermHasher:
    ledger = open_ledger(config)
    try:
        return ledger.guard_hasher()
    finally:
        ledger.close()


def _bind_cpu_threads(config: LetheConfig, rank: int) -> list[str]:
    """Pin each CPU engine to its own cores: replicas sharing a small machine otherwise slow each
    other down several-fold (measured ~5x on 2 cores). Returns the cores the engine is bound to."""
    threads = config.engine.cpu_threads
    cores = os.cpu_count() or 1
    first = (rank * threads) % cores
    span = [str((first + i) % cores) for i in range(threads)]
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(span) if threads > 1 else span[0])
    import torch  # heavy: only LLM replicas on CPU need it, and they load it for the engine anyway

    torch.set_num_threads(threads)
    return _bound_cores(os.environ["VLLM_CPU_OMP_THREADS_BIND"])


def _bound_cores(bind: str) -> list[str]:
    """The cores a `VLLM_CPU_OMP_THREADS_BIND` value names ("0", "0,1", "0-3", "0-3|4-7"); a value
    such as "auto" names none (unknown: the controller treats the replica as sharing cores)."""
    cores: list[str] = []
    for part in bind.replace("|", ",").split(","):
        first, _, last = part.strip().partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            return []
        cores.extend(str(c) for c in range(int(first), int(last or first) + 1))
    return cores


def _on_serving_version(config: LetheConfig) -> tuple[LetheConfig, str | None]:
    """The config this replica starts from: the promoted weight version when there is one, so a
    restarted or added replica serves what the others serve before it takes traffic.

    When that version fails verification, the replica loads the base model only to stay swappable,
    and refuses traffic (the reason, second) until the controller swaps a verified version in: serving
    other weights than the ones promoted would make every statement about the serving version false.
    """
    base = config.model_path
    ledger = open_ledger(config)
    try:
        record = serving_record(ledger, base)
    finally:
        ledger.close()
    if Path(record.path) == Path(base):
        return config, None
    try:
        validate_candidate(base, record)
    except VersionInvalidError as exc:
        log.error("serving version %s fails verification (%s); this replica refuses traffic", record.id, exc)
        return config, f"the serving weight version {record.id} fails verification: {exc}"
    engine = config.engine.model_copy(update={"model": record.path, "served_model_name": config.served_model_name})
    return config.model_copy(update={"engine": engine}), None


async def latest_leakage(versions: VersionsHandle, timeout_s: float) -> dict[str, Any] | None:
    """ModelVersions' latest leakage report; None when it does not answer within `timeout_s` (a
    certificate is then issued without one rather than not at all)."""
    try:
        return await asyncio.wait_for(versions.leakage(), timeout_s)
    except Exception as exc:  # a timeout, or ModelVersions restarting
        log.warning("no leakage report for the certificate: %s", str(exc) or type(exc).__name__)
        return None


async def replica_versions(versions: VersionsHandle, timeout_s: float) -> list[dict[str, Any]] | None:
    """Each LLM replica's own weight version (and whether it verified it); None when ModelVersions or
    the replicas do not answer within `timeout_s` (the certificate then says it does not know)."""
    try:
        listing = await asyncio.wait_for(versions.list(), timeout_s)
    except Exception as exc:  # a timeout, or ModelVersions restarting
        log.warning("no replica versions for the certificate: %s", str(exc) or type(exc).__name__)
        return None
    if not listing.get("replicas_known", True):
        return None
    return [dict(r) for r in listing.get("replicas", [])]


def ingress_access(config: LetheConfig) -> dict[str, Any]:
    """`create_app`'s access arguments: API keys (in the ledger's database, looked up and cached by
    each ingress replica on its own), roles, limits, the chat timeout and which headers chat sends."""
    server = config.server
    keys = KeyStore(open_ledger(config))
    settings = AccessSettings(
        admin_token=config.admin_token,
        chat_auth=server.chat_auth,
        rate_limit=server.rate_limit,
        anonymous_rate_limit=server.anonymous_rate_limit,
        max_streams_per_key=server.max_streams_per_key,
        anonymous_max_streams=server.anonymous_max_streams,
        key_cache_s=server.key_cache_s,
    )
    return {
        "access": AccessControl(settings, keys),
        "keys": keys,
        "request_timeout_s": server.request_timeout_s,
        "diagnostic_headers": server.diagnostic_headers,
    }


def _sync_timing(config: LetheConfig) -> SyncTiming:
    poll = config.guard.poll_timeout_s
    return SyncTiming(
        poll_timeout_s=poll, ack_timeout_s=config.guard.ack_timeout_s, lease_s=poll * 4, fence_after_s=poll * 3
    )


class LLMServer:
    """One replica of the model: an engine (`engine.backend`, vLLM by default) plus the model's chat
    template. Its engine is told the replica id (`llm-<rank>`), the name swaps and listings use."""

    # Serve awaits an async constructor: the replica takes no request before the engine is loaded.
    async def __init__(self, config_json: str) -> None:  # type: ignore[misc]
        configure_ray_metrics()
        configure_replica_logs()
        config = LetheConfig.model_validate_json(config_json)
        context = serve.get_replica_context()
        rank = getattr(getattr(context, "rank", None), "rank", 0) or 0
        if config.server.llm_num_gpus == 0:
            self._devices = [f"cpu:{core}" for core in _bind_cpu_threads(config, rank)]
        else:
            self._devices = [f"gpu:{gpu}" for gpu in ray.get_runtime_context().get_accelerator_ids().get("GPU", [])]
        self._config = config
        start_config, unverified = _on_serving_version(config)
        self._replica = LLMReplica(start_config, replica_id=f"llm-{rank}", unverified=unverified)
        await self._replica.start()
        metrics.set_serving_version(self._replica.info().model_version)
        metrics.set_replica_unverified(self._replica.unverified is not None)

    async def replica_state(self) -> dict[str, Any]:
        # The cores (CPU) or GPUs this replica computes on: the controller runs two replicas' smoke
        # tests at the same time only when these do not overlap.
        return {**self._replica.state(), "devices": self._devices}

    async def stage_if(
        self, replica: str, path: str, version: str, digests: dict[str, str] | None = None
    ) -> dict[str, Any] | None:
        """Broadcast target: the named replica stages `path` in memory (it keeps serving)."""
        if replica != self._replica.replica_id:
            return None
        return await self._replica.stage(path, version, digests)

    async def discard_staged_if(self, replica: str) -> bool | None:
        if replica != self._replica.replica_id:
            return None
        await self._replica.discard_staged()
        return True

    async def phase_if(self, replica: str, ticket: str, phase: str, timeout_s: float) -> bool | None:
        """Broadcast target: returns once the named replica's swap `ticket` reached `phase` or ended."""
        if replica != self._replica.replica_id:
            return None
        await self._replica.wait_phase(ticket, phase, timeout_s)
        return True

    async def proceed_if(self, replica: str, ticket: str, load: bool) -> bool | None:
        """Broadcast target: the named replica's held swap `ticket` loads (or, `load` False, is called off)."""
        if replica != self._replica.replica_id:
            return None
        self._replica.proceed(ticket, load)
        return True

    async def swap_if(
        self,
        replica: str,
        path: str,
        version: str,
        ticket: str | None = None,
        hold: bool = False,
        digests: dict[str, str] | None = None,
    ) -> dict[str, Any] | None:
        """Broadcast target of a rolling swap: only the named replica acts, the others answer None."""
        if replica != self._replica.replica_id:
            return None
        swap = self._config.swap
        settings = SwapSettings(
            drain_timeout_s=swap.drain_timeout_s,
            smoke_prompt=swap.smoke_prompt,
            smoke_max_tokens=swap.smoke_max_tokens,
            smoke_expect=swap.smoke_expect,
        )
        try:
            return await self._replica.swap(path, version, settings, ticket=ticket, hold=hold, digests=digests)
        finally:
            metrics.set_serving_version(self._replica.info().model_version)
            metrics.set_replica_unverified(self._replica.unverified is not None)

    async def generate(
        self, messages: list[dict[str, str]], sampling: SamplingRequest, request_id: str
    ) -> AsyncIterator[StreamStart | GenerationChunk]:
        async for item in self._replica.generate(messages, sampling, request_id):
            yield item

    async def health(self) -> bool:
        return await self._replica.health()

    async def info(self) -> EngineInfo:
        return self._replica.info()

    async def check_health(self) -> None:
        # Serve calls this periodically; raising makes it replace the replica. An unverified replica is
        # alive (a restart would verify nothing): it stays, not ready, until a verified swap.
        if not await self._replica.alive():
            raise RuntimeError("engine unhealthy")

    async def __del__(self) -> None:
        await self._replica.shutdown()


class ForgetAuthority:
    """The one writer of forget requests and the source of forget-index versions (see
    gateway.forget.authority); certificates quote ModelVersions' latest leakage report. Its event loop
    serves the followers' polls and acks: every ledger call here runs on the ledger's worker threads
    (`ForgetRecords.calls`), so a stalled database answers 503 and never delays an ack."""

    # Serve awaits an async constructor; the embedder loads before the first forget request.
    async def __init__(self, config_json: str, versions: DeploymentHandle[Any]) -> None:  # type: ignore[misc]
        configure_ray_metrics()
        configure_replica_logs()
        config = LetheConfig.model_validate_json(config_json)
        private_dir(config.home)
        self._records = ForgetRecords(open_ledger(config))
        self._signer = CertificateSigner(config.home / "keys")
        self._versions = VersionsHandle(versions)
        self._model_path = config.model_path
        # What certificates state about the guard: the ingress replicas build theirs from the same config.
        self._guard_state = guard_state(config.guard.enabled, config.guard.prompt_mode)
        embedder = MiniLMEmbedder(threads=config.guard.embed_threads)
        embedder.encode(["warm up"])  # load the model now, not on the first forget request
        hasher = self._records.ledger.guard_hasher()
        rebuild_stale_artifacts(self._records.ledger, embedder, hasher)  # older formats, before publishing
        self._authority = IndexAuthority(
            self._records.ledger,
            embedder,
            timing=_sync_timing(config),
            kill_actor=ray.kill,
            hasher=hasher,
            calls=self._records.calls,
        )

    async def add(self, payload: dict[str, Any], actor: Actor | None = None) -> dict[str, Any]:
        with acting_as(actor):  # the key owns the request and is the actor of its audit events
            return await self._records.add(self._authority, payload)

    async def get(self, forget_id: str) -> dict[str, Any] | None:
        return await self._records.calls(self._records.get, forget_id)

    async def list(self, status: ForgetStatus | None, limit: int, offset: int) -> builtins.list[dict[str, Any]]:
        return await self._records.calls(self._records.list, status, limit, offset)

    async def certificate(self, forget_id: str, actor: Actor | None = None) -> dict[str, Any] | None:
        leakage, replicas = await asyncio.gather(
            latest_leakage(self._versions, LEAKAGE_TIMEOUT_S), replica_versions(self._versions, LEAKAGE_TIMEOUT_S)
        )
        calls = self._records.calls
        # The base model until a promotion.
        serving = await calls(serving_record, self._records.ledger, self._model_path)
        with acting_as(actor):  # issuing it is an audit event of this key
            return await calls(
                self._records.certificate,
                self._signer,
                forget_id,
                leakage=leakage,
                serving=serving,
                guard=self._guard_state,
                replicas=replicas,
            )

    async def shred(self, forget_id: str, drop_semantic: bool, actor: Actor | None = None) -> dict[str, Any] | None:
        with acting_as(actor):  # the operator's key is the actor of forget.shredded
            return await self._records.calls(self._records.shred, forget_id, drop_semantic=drop_semantic)

    async def certificate_key(self) -> dict[str, str]:
        return self._signer.public_key()

    async def audit(
        self, kind: str | None, subject_id: str | None, limit: int, offset: int
    ) -> builtins.list[dict[str, Any]]:
        return await self._records.calls(self._records.audit, kind, subject_id, limit, offset)

    async def poll(self, follower_id: str, known: int, actor: Any = None) -> IndexUpdate:
        return await self._authority.poll(follower_id, known, actor)

    async def ack(self, follower_id: str, version: int) -> bool:
        return await self._authority.ack(follower_id, version)

    async def followers(self) -> dict[str, dict[str, Any]]:
        return self._authority.followers()


class UnlearnJobs:
    """The one JobManager: launches each job as a Ray task and records it in the ledger; with
    `swap.auto_promote`, a published version is promoted through ModelVersions."""

    def __init__(self, config_json: str, versions: DeploymentHandle[Any] | None = None) -> None:
        configure_ray_metrics()
        configure_replica_logs()
        # The method registry (it imports torch, ~180 MiB) is what a submission validates against: loaded
        # now, the replica's footprint is what it will be after the first job, not a jump at that job.
        import unlearn_jobs.methods  # noqa: F401

        config = LetheConfig.model_validate_json(config_json)
        settings = JobSettings(
            ledger_url=config.ledger_url,
            home=str(config.home),
            base_model_dir=str(config.model_path),
            num_cpus=config.unlearn.num_cpus,
            num_gpus=config.unlearn.num_gpus,
            threads=config.unlearn.threads,
        )
        promote = None
        if versions is not None and config.swap.auto_promote:
            client = VersionsHandle(versions)

            async def promote(version_id: str, job_id: str) -> None:
                await client.promote(version_id, f"job:{job_id}")

        launch = RayJobLauncher(num_cpus=config.unlearn.num_cpus, num_gpus=config.unlearn.num_gpus)
        self._manager = JobManager(open_ledger(config), settings, launch=launch, on_published=promote)

    async def submit(
        self,
        method: str,
        forget_ids: builtins.list[str] | None,
        params: dict[str, Any],
        gates: dict[str, Any],
        actor: Actor | None = None,
    ) -> dict[str, Any]:
        with acting_as(actor):
            return await self._manager.submit(method, forget_ids, params, gates)

    async def get(self, job_id: str) -> dict[str, Any]:
        return self._manager.get(job_id)

    async def list(self, state: JobState | None, limit: int, offset: int) -> builtins.list[dict[str, Any]]:
        return self._manager.list(state, limit, offset)

    async def cancel(self, job_id: str, actor: Actor | None = None) -> dict[str, Any]:
        with acting_as(actor):
            return await self._manager.cancel(job_id)


class ModelVersions:
    """The one SwapController: which weight version serves, rolling swaps, rollback, import; and the
    leakage prober, whose latest report it serves."""

    RECONCILE_PERIOD_S = 30.0

    # Serve awaits an async constructor: the background loops need the replica's event loop.
    async def __init__(self, config_json: str, llm: DeploymentHandle[Any]) -> None:  # type: ignore[misc]
        configure_ray_metrics()
        configure_replica_logs()
        config = LetheConfig.model_validate_json(config_json)
        self._config = config
        ledger = open_ledger(config)
        redact_manifests(config.versions_dir)  # versions published before metrics were scores-only
        probes = config.probes
        replicas = LLMHandle(llm, swap_timeout_s=config.swap.drain_timeout_s + 600)
        self._prober = LeakageProber(
            ledger,
            replicas,
            lambda: MiniLMEmbedder(threads=config.guard.embed_threads),
            state_dir=config.home / "probes",
            base_version=model_version(config.model_path),
            retain_file=probes.retain_file,
            max_tokens=probes.max_tokens,
            concurrency=probes.concurrency,
            on_report=export_report,
            views=probes.views,
        )
        self._tasks: set[asyncio.Task[None]] = set()

        def on_swap(result: str, seconds: float, version: str) -> None:
            metrics.record_swap(result, seconds)
            if result == "ok" and probes.enabled and probes.after_swap:
                self._background(self._probe(f"after the swap to {version}"))

        self._controller = SwapController(
            ledger,
            replicas,
            base_dir=config.model_path,
            versions_dir=config.versions_dir,
            hooks=SwapHooks(on_result=on_swap),
            overlap=config.swap.overlap,
        )
        self._background(self._reconcile_forever())
        self._ledger = ledger
        self._background(self._shred_forever(config.retention))
        if probes.enabled and probes.interval_s > 0:
            self._background(self._probe_forever(probes.interval_s))

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
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

    async def _shred_forever(self, retention: RetentionConfig) -> None:
        """Crypto-shred the forget requests the retention policy says are due (gateway.forget.shredding):
        here because the `unlearned` policy needs the latest leakage report of the serving version."""
        while retention.shred != "never":
            await asyncio.sleep(retention.check_interval_s)
            try:
                await asyncio.to_thread(
                    shred_due,
                    self._ledger,
                    policy=retention.shred,
                    retention_days=retention.retention_days,
                    drop_semantic=retention.drop_semantic,
                    report=self._prober.latest,
                )
            except Exception as exc:  # the ledger unreachable: next period
                log.warning("shredding check failed: %s", exc)

    async def leakage(self) -> dict[str, Any] | None:
        return self._prober.latest

    async def run_probe(self) -> dict[str, Any]:
        if self._prober.running:
            raise SwapConflictError("a probe run is in progress; GET /v1/admin/leakage shows the last report")
        return await self._prober.run(reason="requested")

    async def list(self) -> dict[str, Any]:
        return await self._controller.list()

    async def history(self, limit: int) -> builtins.list[dict[str, Any]]:
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

    # Serve awaits an async constructor: the replica is not ready until its index is current.
    async def __init__(  # type: ignore[misc]
        self,
        llm: DeploymentHandle[Any],
        authority: DeploymentHandle[Any],
        jobs: DeploymentHandle[Any],
        versions: DeploymentHandle[Any],
        config_json: str,
    ) -> None:
        configure_ray_metrics()
        configure_replica_logs()
        self._config = LetheConfig.model_validate_json(config_json)
        self._llm = LLMHandle(llm)
        self._authority = AuthorityHandle(authority)
        self._jobs = JobsHandle(jobs)
        self._versions = VersionsHandle(versions)
        embedder = MiniLMEmbedder(threads=self._config.guard.embed_threads)
        embedder.encode(["warm up"])  # load the model before taking traffic
        context = serve.get_replica_context()
        self._follower = IndexFollower(
            self._authority,
            # Every check and hit exported; terms hashed with the deployment's key, like the authority's.
            ForgetIndex.empty(embedder, observer=metrics.GuardMetrics(), hasher=_guard_hasher(self._config)),
            timing=_sync_timing(self._config),
            actor=ray.get_runtime_context().current_actor,
            follower_id=f"ingress-{context.replica_id.unique_id}",
        )
        # Not ready until the index is current: a replica never serves before it enforces.
        await self._follower.bootstrap()
        self._follower.start()

    def __serve_build_asgi_app__(self) -> FastAPI:
        if not self._config.guard.enabled:
            log.warning("the guard is OFF (guard.enabled=false): forgotten content is not enforced")
        service = ChatService(
            self._llm,
            self._config.served_model_name,
            guard=self._follower if self._config.guard.enabled else None,
            prompt_mode=self._config.guard.prompt_mode,
            ingress_id=self._follower.follower_id,
            ready_timeout_s=self._config.server.ready_timeout_s,
            check_budget_s=self._config.guard.check_budget_s,
            max_check_chars=self._config.guard.max_check_chars,
        )
        forget = ForgetService(self._authority, self._follower, check_budget_s=self._config.guard.check_budget_s)
        return create_app(
            service,
            forget=forget,
            jobs=UnlearnService(self._jobs),
            versions=VersionsService(self._versions),
            max_body_bytes=self._config.server.max_body_bytes,
            max_chat_body_bytes=self._config.server.max_chat_body_bytes,
            **ingress_access(self._config),
        )

    async def check_health(self) -> None:
        reason = self._follower.out_of_service_reason()
        if reason is not None and self._follower.evicted:
            raise RuntimeError(reason)  # Serve replaces an evicted replica
