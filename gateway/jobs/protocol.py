"""Wire types of the unlearning-job routes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.ledger.states import JobState


class JobSubmit(BaseModel):
    """`POST /v1/unlearn/jobs`: which method, which forget requests, which overrides."""

    model_config = ConfigDict(extra="forbid")

    method: str = Field(
        "rmu",
        description="rmu (the default: it met issue 17's leakage views, retain and cost targets), npo, simnpo, "
        "grad_diff or edit",
    )
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
    state: JobState
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
