"""Wire types of the weight-version routes: versions, promote, rollback, import, swaps."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


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
