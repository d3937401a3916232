"""The whole HTTP app over in-memory stand-ins for the deployments behind the ingress (LLM, forget
authority, job manager, version controller) and a real key store on a SQLite ledger: for route, role
and fuzz tests. Nothing here generates text or runs the guard for real."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI

from gateway.chat.engines.base import EngineInfo, GenerationChunk, SamplingRequest, StreamStart
from gateway.chat.service import ChatService
from gateway.forget.certificates import CertificateSigner
from gateway.forget.service import ForgetService
from gateway.guard.index import ForgetIndex
from gateway.http.app import create_app
from gateway.http.auth import AccessControl, AccessSettings
from gateway.jobs.manager import JobNotFoundError
from gateway.jobs.service import UnlearnService
from gateway.ledger import Ledger
from gateway.ledger.actors import Actor, Role
from gateway.ledger.keys import ApiKey, KeyStore
from gateway.weights.controller import VersionNotFoundError
from gateway.weights.service import VersionsService
from tests.support.fakes import StaticGuard

MODEL = "fake-model"
ADMIN_TOKEN = "test-admin-token"
NOW = "2026-11-27T12:00:00+00:00"


class HashEmbedder:
    """An `Embedder` without a model: a unit vector per text from its hash (no meaning, no cost)."""

    name = "hash-embedder"
    dim = 384

    def encode(self, texts: list[str]) -> np.ndarray:
        rows = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            rows[i, hash(text) % self.dim] = 1.0
        return rows


class EchoLLM:
    """`LLMClient` answering every chat with `reply`, word by word, honouring max_tokens."""

    def __init__(self, reply: str = "Hello from the fake engine.", version: str = "fake-v1") -> None:
        self.reply = reply
        self.version = version

    async def generate(
        self, messages: list[dict[str, str]], sampling: SamplingRequest, request_id: str
    ) -> AsyncIterator[StreamStart | GenerationChunk]:
        words = self.reply.split(" ")
        limit = sampling.max_tokens or len(words)
        yield StreamStart(self.version, "llm-0", 7, limit)
        out = words[:limit]
        for i, word in enumerate(out, start=1):
            finish = ("stop" if len(out) == len(words) else "length") if i == len(out) else None
            yield GenerationChunk(word if i == 1 else " " + word, 7, i, finish)

    async def health(self) -> bool:
        return True

    async def info(self) -> EngineInfo:
        return EngineInfo(model_path="/fake", model_version=self.version, max_model_len=2048)


def _forget_row(forget_id: str) -> dict[str, Any]:
    return {
        "id": forget_id,
        "status": "enforced",
        "has_subject": True,
        "reason": "gdpr",
        "action": "block",
        "index_version": 1,
        "created_at": NOW,
        "enforced_at": NOW,
        "counts": {"texts": 0, "qa": 0, "literals": 1},
    }


@dataclass
class FakeAuthority:
    """`ForgetAuthorityAPI` in memory; remembers which key filed each request (`owners`), as the real
    authority records it in the ledger (gateway.ledger.keys.KeyStore.owner_of reads it there)."""

    signer: CertificateSigner
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    owners: dict[str, str | None] = field(default_factory=dict)
    actors: list[tuple[str, Actor | None]] = field(default_factory=list)
    audit_events: list[dict[str, Any]] = field(default_factory=list)

    def file(self, forget_id: str, owner: Actor | None) -> None:
        self.rows[forget_id] = _forget_row(forget_id)
        self.owners[forget_id] = owner.key_id if owner is not None else None

    async def add(self, payload: dict[str, Any], actor: Actor | None = None) -> dict[str, Any]:
        forget_id = f"f-{len(self.rows) + 1}"
        self.file(forget_id, actor)
        self.actors.append(("add", actor))
        return {
            "id": forget_id,
            "status": "enforced",
            "index_version": 1,
            "enforced_at": NOW,
            "content_digest_salt": "c2FsdA",
        }

    async def get(self, forget_id: str) -> dict[str, Any] | None:
        return self.rows.get(forget_id)

    async def list(self, status: Any, limit: int, offset: int) -> builtins.list[dict[str, Any]]:
        rows = [r for r in self.rows.values() if status is None or r["status"] == status]
        return rows[offset : offset + limit]

    async def certificate(self, forget_id: str, actor: Actor | None = None) -> dict[str, Any] | None:
        self.actors.append(("certificate", actor))
        if forget_id not in self.rows:
            return None
        return self.signer.sign({"forget_request": {"id": forget_id}, "statement": "Enforced."})

    async def shred(self, forget_id: str, drop_semantic: bool, actor: Actor | None = None) -> dict[str, Any] | None:
        self.actors.append(("shred", actor))
        return self.rows.get(forget_id)

    async def certificate_key(self) -> dict[str, str]:
        return self.signer.public_key()

    async def audit(
        self, kind: str | None, subject_id: str | None, limit: int, offset: int
    ) -> builtins.list[dict[str, Any]]:
        return self.audit_events[offset : offset + limit]


def _job(job_id: str) -> dict[str, Any]:
    return {
        "id": job_id,
        "method": "npo",
        "forget_ids": [],
        "params": {},
        "resources": {},
        "state": "queued",
        "progress": 0.0,
        "step": 0,
        "loss": None,
        "metrics": {},
        "version_id": None,
        "error": None,
        "created_at": NOW,
        "started_at": None,
        "finished_at": None,
    }


@dataclass
class FakeJobs:
    """`JobsAPI` in memory."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=lambda: {"j-1": _job("j-1")})
    actors: list[tuple[str, Actor | None]] = field(default_factory=list)

    async def submit(
        self,
        method: str,
        forget_ids: builtins.list[str] | None,
        params: dict[str, Any],
        gates: dict[str, Any],
        actor: Actor | None = None,
    ) -> dict[str, Any]:
        self.actors.append(("submit", actor))
        job = _job(f"j-{len(self.jobs) + 1}")
        self.jobs[job["id"]] = job
        return job

    async def get(self, job_id: str) -> dict[str, Any]:
        if job_id not in self.jobs:
            raise JobNotFoundError(job_id)
        return self.jobs[job_id]

    async def list(self, state: Any, limit: int, offset: int) -> builtins.list[dict[str, Any]]:
        return list(self.jobs.values())[offset : offset + limit]

    async def cancel(self, job_id: str, actor: Actor | None = None) -> dict[str, Any]:
        self.actors.append(("cancel", actor))
        return await self.get(job_id)


def _version(version_id: str) -> dict[str, Any]:
    return {
        "id": version_id,
        "parent": None,
        "method": None,
        "created": NOW,
        "path": f"/versions/{version_id}",
        "serving": version_id == "v-base",
        "forget_ids": [],
        "metrics": {},
    }


def _report(kind: str, version: str) -> dict[str, Any]:
    return {"kind": kind, "version": version, "previous": "v-base", "seconds": 0.1, "replicas": []}


@dataclass
class FakeVersions:
    """`VersionsAPI` in memory; records the actor of every change."""

    actors: list[tuple[str, str]] = field(default_factory=list)

    async def list(self) -> dict[str, Any]:
        return {"serving": "v-base", "swapping": False, "data": [_version("v-base")], "replicas": []}

    async def history(self, limit: int) -> builtins.list[dict[str, Any]]:
        return []

    async def promote(self, version_id: str, actor: str) -> dict[str, Any]:
        self.actors.append(("promote", actor))
        if version_id != "v-base":
            raise VersionNotFoundError(version_id)
        return _report("promote", version_id)

    async def rollback(self, actor: str) -> dict[str, Any]:
        self.actors.append(("rollback", actor))
        return _report("rollback", "v-base")

    async def import_version(self, path: str, actor: str, note: str | None) -> dict[str, Any]:
        self.actors.append(("import", actor))
        return _version("v-imported")

    async def leakage(self) -> dict[str, Any] | None:
        return {"versions": {}}

    async def run_probe(self) -> dict[str, Any]:
        return {"versions": {}}


@dataclass
class FakeGateway:
    """The app and everything behind it, with one key of each role (`secrets[role]`)."""

    app: FastAPI
    ledger: Ledger
    keys: KeyStore
    authority: FakeAuthority
    jobs: FakeJobs
    versions: FakeVersions
    secrets: dict[Role, str]
    actors: dict[Role, Actor]


@dataclass
class OwnedKeys:
    """The real key store for keys; request owners from the fake authority."""

    keys: KeyStore
    authority: FakeAuthority

    def authenticate(self, secret: str) -> ApiKey | None:
        return self.keys.authenticate(secret)

    def owner_of(self, forget_id: str) -> str | None:
        return self.authority.owners.get(forget_id)


def build_gateway(home: Path, *, settings: AccessSettings | None = None, **app_args: Any) -> FakeGateway:
    """The full app (every router mounted) on fakes; `settings` default: admin token, chat open."""
    ledger = Ledger.open(f"sqlite:///{home / 'ledger.db'}")
    keys = KeyStore(ledger)
    secrets: dict[Role, str] = {}
    actors: dict[Role, Actor] = {}
    for role in Role:
        key, secret = keys.create(f"{role.value}-key", role, actor="test")
        secrets[role], actors[role] = secret, key.actor
    authority = FakeAuthority(CertificateSigner(home / "keys"))
    jobs, versions = FakeJobs(), FakeVersions()
    access = AccessControl(settings or AccessSettings(admin_token=ADMIN_TOKEN), OwnedKeys(keys, authority))
    guard = StaticGuard(ForgetIndex.empty(HashEmbedder()))  # an empty index: the guard passes everything
    chat = ChatService(EchoLLM(), MODEL, ready_timeout_s=2, guard=guard)
    app = create_app(
        chat,
        max_body_bytes=app_args.pop("max_body_bytes", 65536),
        forget=ForgetService(authority, guard=guard),
        jobs=UnlearnService(jobs),
        versions=VersionsService(versions),
        access=access,
        keys=keys,
        **app_args,
    )
    return FakeGateway(app, ledger, keys, authority, jobs, versions, secrets, actors)
