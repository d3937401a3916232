"""Wire types of the forget routes: forget requests, their status, guard checks, certificates, audit."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.errors import WireModel
from gateway.ledger import states

# Bounds on one forget request: large enough for a real person's record, small enough that
# building its guard artifacts (embeddings) stays well under a second and never times out.
MAX_FORGET_TEXTS = 64
MAX_FORGET_TEXT_CHARS = 8_000
MAX_FORGET_QA = 128
MAX_FORGET_LITERALS = 256
MAX_LITERAL_CHARS = 64


class QAPair(WireModel):
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
    """A forget request as the API shows it: never its content, not even its subject (keep the id)."""

    id: str
    status: states.ForgetStatus
    has_subject: bool = Field(description="Whether it was filed with a subject (the subject itself is not shown).")
    reason: str
    action: str
    index_version: int
    created_at: str
    enforced_at: str | None
    counts: dict[str, int] = Field(default_factory=dict, description="texts, qa and literals stored")
    shredded_at: str | None = Field(
        None, description="When the request's content was crypto-shredded (subject is then null for good)."
    )


class ForgetAccepted(BaseModel):
    id: str
    status: states.ForgetStatus
    index_version: int
    enforced_at: str
    content_digest_salt: str = Field(
        description=(
            "Shown once, kept by no one but you: the salt of the HMAC-SHA256 `content_digest` in this "
            "request's deletion certificate (urlsafe base64). Recompute the digest from your copy of the "
            "content to check that a certificate covers it."
        )
    )


class ShredRequest(WireModel):
    drop_semantic: bool = Field(
        False,
        description="Also drop its sentence embeddings (their inversion could approximate the text); its "
        "hashed literals and shingles keep enforcing it.",
    )


class ForgetList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ForgetStatus]


class CheckRequest(WireModel):
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
