"""Typed clients over Serve deployment handles: one per deployment, one method per remote call.

Each client is what the Ray-free code on the other side expects (`LLMClient`, `Fleet`, `AuthorityClient`,
`ForgetAuthorityAPI`, `JobsAPI`, `VersionsAPI`), with the deployment method's own signature, so a
renamed method or a changed argument is a type error here rather than an AttributeError in a replica.

>>> authority = AuthorityHandle(handle)
>>> record = await authority.get("f-1")          # `await handle.get.remote("f-1")`, typed
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator
from typing import Any

from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator

from gateway.chat.engines.base import EngineInfo, GenerationChunk, SamplingRequest, StreamStart
from gateway.forget.authority import IndexUpdate
from gateway.ledger.actors import Actor
from gateway.ledger.states import ForgetStatus, JobState


class LLMHandle:
    """The LLM deployment: `generate`, `health` and `info` go to one replica the router picks (the
    `LLMClient` of the chat path and the probes); `states`, `stage`, `swap`, `phase`,
    `proceed` and `discard_staged` reach every live replica by a broadcast, of which only the named replica acts
    (the SwapController's `Fleet`)."""

    def __init__(self, handle: DeploymentHandle[Any], *, swap_timeout_s: float | None = None) -> None:
        self._handle = handle
        self._stream = handle.options(stream=True)
        self._swap_timeout_s = swap_timeout_s

    def generate(
        self, messages: list[dict[str, str]], sampling: SamplingRequest, request_id: str
    ) -> AsyncIterator[StreamStart | GenerationChunk]:
        response = self._stream.generate.remote(messages, sampling, request_id)
        if not isinstance(response, DeploymentResponseGenerator):
            raise TypeError("a streaming handle answered with a single response")
        # The response generator itself, not a wrapper: the chat path stops the replica with its cancel().
        return response

    async def health(self) -> bool:
        healthy: bool = await self._handle.health.remote()
        return healthy

    async def info(self) -> EngineInfo:
        info: EngineInfo = await self._handle.info.remote()
        return info

    async def states(self) -> list[dict[str, Any]]:
        results = await self._handle.broadcast("replica_state").results_async(timeout_s=60, return_exceptions=True)
        return [r for r in results if isinstance(r, dict)]

    async def swap(
        self,
        replica: str,
        path: str,
        version: str,
        ticket: str | None = None,
        hold: bool = False,
        digests: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        report: dict[str, Any] = await self._on(replica, "swap_if", path, version, ticket, hold, digests)
        return report

    async def stage(
        self, replica: str, path: str, version: str, digests: dict[str, str] | None = None
    ) -> dict[str, Any]:
        report: dict[str, Any] = await self._on(replica, "stage_if", path, version, digests)
        return report

    async def discard_staged(self, replica: str) -> None:
        await self._on(replica, "discard_staged_if")

    async def phase(self, replica: str, ticket: str, phase: str) -> None:
        await self._on(replica, "phase_if", ticket, phase, self._swap_timeout_s or 600.0)

    async def proceed(self, replica: str, ticket: str, load: bool = True) -> None:
        await self._on(replica, "proceed_if", ticket, load)

    async def _on(self, replica: str, method: str, *args: Any) -> Any:
        """Broadcast `method(replica, *args)`: only the named replica acts (the others answer None)."""
        results = await self._handle.broadcast(method, replica, *args).results_async(
            timeout_s=self._swap_timeout_s, return_exceptions=True
        )
        for result in results:
            if result is not None and not isinstance(result, BaseException):
                return result
        errors = [r for r in results if isinstance(r, BaseException)]
        mine = [e for e in errors if replica in str(e)]
        if mine or errors:
            raise (mine or errors)[0]
        raise RuntimeError(f"replica {replica} is no longer running")


class AuthorityHandle:
    """The ForgetAuthority deployment: the forget API's `ForgetAuthorityAPI` and the index follower's
    `AuthorityClient`."""

    def __init__(self, handle: DeploymentHandle[Any]) -> None:
        self._handle = handle

    async def add(self, payload: dict[str, Any], actor: Actor | None = None) -> dict[str, Any]:
        accepted: dict[str, Any] = await self._handle.add.remote(payload, actor)
        return accepted

    async def get(self, forget_id: str) -> dict[str, Any] | None:
        record: dict[str, Any] | None = await self._handle.get.remote(forget_id)
        return record

    async def list(self, status: ForgetStatus | None, limit: int, offset: int) -> builtins.list[dict[str, Any]]:
        records: builtins.list[dict[str, Any]] = await self._handle.list.remote(status, limit, offset)
        return records

    async def certificate(self, forget_id: str, actor: Actor | None = None) -> dict[str, Any] | None:
        certificate: dict[str, Any] | None = await self._handle.certificate.remote(forget_id, actor)
        return certificate

    async def shred(self, forget_id: str, drop_semantic: bool, actor: Actor | None = None) -> dict[str, Any] | None:
        row: dict[str, Any] | None = await self._handle.shred.remote(forget_id, drop_semantic, actor)
        return row

    async def certificate_key(self) -> dict[str, str]:
        key: dict[str, str] = await self._handle.certificate_key.remote()
        return key

    async def audit(
        self, kind: str | None, subject_id: str | None, limit: int, offset: int
    ) -> builtins.list[dict[str, Any]]:
        events: builtins.list[dict[str, Any]] = await self._handle.audit.remote(kind, subject_id, limit, offset)
        return events

    async def poll(self, follower_id: str, known: int, actor: Any = None) -> IndexUpdate:
        update: IndexUpdate = await self._handle.poll.remote(follower_id, known, actor)
        return update

    async def ack(self, follower_id: str, version: int) -> bool:
        acked: bool = await self._handle.ack.remote(follower_id, version)
        return acked


class JobsHandle:
    """The UnlearnJobs deployment: the jobs API's `JobsAPI`."""

    def __init__(self, handle: DeploymentHandle[Any]) -> None:
        self._handle = handle

    async def submit(
        self,
        method: str,
        forget_ids: builtins.list[str] | None,
        params: dict[str, Any],
        gates: dict[str, Any],
        actor: Actor | None = None,
    ) -> dict[str, Any]:
        job: dict[str, Any] = await self._handle.submit.remote(method, forget_ids, params, gates, actor)
        return job

    async def get(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = await self._handle.get.remote(job_id)
        return job

    async def list(self, state: JobState | None, limit: int, offset: int) -> builtins.list[dict[str, Any]]:
        jobs: builtins.list[dict[str, Any]] = await self._handle.list.remote(state, limit, offset)
        return jobs

    async def cancel(self, job_id: str, actor: Actor | None = None) -> dict[str, Any]:
        job: dict[str, Any] = await self._handle.cancel.remote(job_id, actor)
        return job


class VersionsHandle:
    """The ModelVersions deployment: the weights API's `VersionsAPI`, auto-promotion for the job
    manager and the latest leakage report for certificates."""

    def __init__(self, handle: DeploymentHandle[Any]) -> None:
        self._handle = handle

    async def list(self) -> dict[str, Any]:
        listing: dict[str, Any] = await self._handle.list.remote()
        return listing

    async def history(self, limit: int) -> builtins.list[dict[str, Any]]:
        events: builtins.list[dict[str, Any]] = await self._handle.history.remote(limit)
        return events

    async def promote(self, version_id: str, actor: str) -> dict[str, Any]:
        report: dict[str, Any] = await self._handle.promote.remote(version_id, actor)
        return report

    async def rollback(self, actor: str) -> dict[str, Any]:
        report: dict[str, Any] = await self._handle.rollback.remote(actor)
        return report

    async def import_version(self, path: str, actor: str, note: str | None) -> dict[str, Any]:
        version: dict[str, Any] = await self._handle.import_version.remote(path, actor, note)
        return version

    async def leakage(self) -> dict[str, Any] | None:
        report: dict[str, Any] | None = await self._handle.leakage.remote()
        return report

    async def run_probe(self) -> dict[str, Any]:
        report: dict[str, Any] = await self._handle.run_probe.remote()
        return report
