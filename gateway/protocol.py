"""Wire types of the HTTP API: the OpenAI chat schema subset Lethe serves, and the error body."""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Wire(BaseModel):
    # Clients (the official openai SDK first) send fields we do not use; ignore, don't reject.
    model_config = ConfigDict(extra="ignore")


class TextPart(_Wire):
    type: Literal["text"]
    text: str


class ChatMessage(_Wire):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(_Wire):
    include_usage: bool = False


class ChatCompletionRequest(_Wire):
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=1, description="Only one choice per request is served.")
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None

    @field_validator("stop")
    @classmethod
    def _stop_limits(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else (value or [])
        if len(stops) > 4:
            raise ValueError("at most 4 stop sequences")
        if any(not s for s in stops):
            raise ValueError("stop sequences must be non-empty")
        return value

    def stop_list(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: ResponseMessage
    finish_reason: str | None
    logprobs: None = None


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


class ChatCompletion(BaseModel):
    id: str = Field(default_factory=new_completion_id)
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None


class DeltaMessage(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: DeltaMessage
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "lethe"
    weight_version: str
    max_model_len: int


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return ErrorBody(error=ErrorDetail(message=message, type=type_, param=param, code=code)).model_dump()


# ---------------------------------------------------------------- forget API

# Bounds on one forget request: large enough for a real person's record, small enough that
# building its guard artifacts (embeddings) stays well under a second and never times out.
MAX_FORGET_TEXTS = 64
MAX_FORGET_TEXT_CHARS = 8_000
MAX_FORGET_QA = 128
MAX_FORGET_LITERALS = 256
MAX_LITERAL_CHARS = 64


class QAPair(_Wire):
    question: str = Field(min_length=1, max_length=1_000)
    answer: str = Field(min_length=1, max_length=2_000)


class ForgetRequest(BaseModel):
    """`POST /v1/forget`: what must not be said again. At least one text, QA pair or literal."""

    model_config = ConfigDict(extra="forbid")

    subject: str | None = Field(None, max_length=200, description="Whose or what data this is.")
    texts: list[str] = Field(default_factory=list, max_length=MAX_FORGET_TEXTS)
    qa: list[QAPair] = Field(default_factory=list, max_length=MAX_FORGET_QA)
    literals: list[str] = Field(default_factory=list, max_length=MAX_FORGET_LITERALS)
    reason: str = Field("gdpr", pattern=r"^[a-z][a-z0-9_-]{0,31}$", description="gdpr, secret, correction, …")
    action: Literal["block", "redact"] = "block"

    @field_validator("texts")
    @classmethod
    def _texts(cls, value: list[str]) -> list[str]:
        for i, text in enumerate(value):
            if not text.strip():
                raise ValueError(f"texts[{i}] is empty")
            if len(text) > MAX_FORGET_TEXT_CHARS:
                raise ValueError(
                    f"texts[{i}] has {len(text)} characters; the limit is {MAX_FORGET_TEXT_CHARS} "
                    "(split long documents into several texts or requests)"
                )
        return value

    @field_validator("literals")
    @classmethod
    def _literals(cls, value: list[str]) -> list[str]:
        for i, literal in enumerate(value):
            if not literal.strip():
                raise ValueError(f"literals[{i}] is empty")
            if len(literal) > MAX_LITERAL_CHARS:
                raise ValueError(f"literals[{i}] is longer than {MAX_LITERAL_CHARS} characters; use texts for prose")
        return value

    def is_empty(self) -> bool:
        return not (self.texts or self.qa or self.literals)


class ForgetStatus(BaseModel):
    id: str
    status: str
    subject: str | None
    reason: str
    action: str
    index_version: int
    created_at: str
    enforced_at: str | None
    counts: dict[str, int] = Field(default_factory=dict, description="texts, qa and literals stored")


class ForgetAccepted(BaseModel):
    id: str
    status: str
    index_version: int
    enforced_at: str


class ForgetList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ForgetStatus]


class CheckRequest(_Wire):
    text: str = Field(min_length=1, max_length=20_000)


class CheckMatch(BaseModel):
    forget_id: str
    kind: str
    score: float


class CheckResult(BaseModel):
    match: bool
    matches: list[CheckMatch]
    index_version: int
    ingress: str = Field("", description="The ingress replica that checked (its local index copy).")


# ---------------------------------------------------------------- unlearning jobs


class JobSubmit(BaseModel):
    """`POST /v1/unlearn/jobs`: which method, which forget requests, which overrides."""

    model_config = ConfigDict(extra="forbid")

    method: str = Field("npo", description="grad_diff, npo or edit")
    forget_ids: list[str] | None = Field(
        None, max_length=1000, description="Forget requests to unlearn; omit for all that are `enforced`."
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Method hyperparameters (lr, steps, …).")
    gates: dict[str, Any] = Field(default_factory=dict, description="Gate overrides (forget_hit_rate_max, …).")


class JobStatus(BaseModel):
    id: str
    object: Literal["unlearn.job"] = "unlearn.job"
    method: str
    forget_ids: list[str]
    params: dict[str, Any]
    resources: dict[str, Any]
    state: str
    progress: float
    step: int
    loss: float | None
    metrics: dict[str, Any]
    version_id: str | None
    error: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None


class JobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[JobStatus]


# ---------------------------------------------------------------- weight versions and swaps


class PromoteRequest(BaseModel):
    """`POST /v1/admin/models/promote`: which weight version should serve."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ImportRequest(BaseModel):
    """`POST /v1/admin/models/versions`: a weight directory on the gateway's filesystem to import."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(..., min_length=1, max_length=4096, description="Directory with config.json and *.safetensors.")
    note: str | None = Field(None, max_length=1000, description="Free text kept in the manifest.")


class WeightVersion(BaseModel):
    id: str
    object: Literal["model.version"] = "model.version"
    parent: str | None
    method: str | None
    created: str | None
    path: str
    serving: bool
    forget_ids: list[str]
    metrics: dict[str, Any]


class ReplicaVersion(BaseModel):
    replica: str
    version: str


class VersionList(BaseModel):
    object: Literal["list"] = "list"
    serving: str
    swapping: bool
    data: list[WeightVersion]
    replicas: list[ReplicaVersion]


class SwapStep(BaseModel):
    replica: str
    version: str
    previous: str
    drain_s: float
    load_s: float
    smoke_s: float
    total_s: float
    smoke_answer: str


class SwapReport(BaseModel):
    object: Literal["model.swap"] = "model.swap"
    kind: str
    version: str
    previous: str
    seconds: float
    replicas: list[SwapStep]


class CertificateKey(BaseModel):
    """The public half of the key that signs deletion certificates (`GET /v1/forget/certificates/key`)."""

    algorithm: str
    key_id: str
    public_key_pem: str


class CertificateCheck(BaseModel):
    """`POST /v1/forget/certificates/verify`: whether a certificate was signed by this gateway, unaltered."""

    valid: bool
    reason: str | None = None
    key_id: str
    forget_id: str | None = None


class AuditEventOut(BaseModel):
    """One append-only audit event: forget requests, index evictions, jobs, versions, swaps, certificates."""

    id: int
    at: str
    actor: str
    kind: str
    subject_id: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class AuditList(BaseModel):
    object: Literal["list"] = "list"
    data: list[AuditEventOut]
