"""Wire types of the weight-version routes: versions, promote, rollback, import, swaps."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# What a POSIX filesystem accepts (PATH_MAX, NAME_MAX, in bytes): longer is a 422 naming `path`, never
# an OSError from the import.
_PATH_MAX_BYTES = 4096
_NAME_MAX_BYTES = 255


class PromoteRequest(BaseModel):
    """`POST /v1/admin/models/promote`: which weight version should serve."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ImportRequest(BaseModel):
    """`POST /v1/admin/models/versions`: a weight directory on the gateway's filesystem to import."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(..., min_length=1, max_length=4096, description="Directory with config.json and *.safetensors.")
    note: str | None = Field(None, max_length=1000, description="Free text kept in the manifest.")

    @field_validator("path")
    @classmethod
    def _a_possible_path(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("a path cannot contain NUL characters")
        if len(value.encode("utf-8", "surrogatepass")) > _PATH_MAX_BYTES:
            raise ValueError(f"a path is at most {_PATH_MAX_BYTES} bytes")
        if any(len(part.encode("utf-8", "surrogatepass")) > _NAME_MAX_BYTES for part in value.split("/")):
            raise ValueError(f"each component of a path is at most {_NAME_MAX_BYTES} bytes")
        return value


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
    verified: bool = Field(
        True, description="False: the replica cannot verify the serving version and refuses traffic."
    )


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
    stage_s: float = Field(0.0, description="Reading and hashing the weights into memory, while still serving.")
    drain_s: float
    wait_s: float = Field(
        0.0, description="Drained, waiting for its turn to load (after a replica on the same core or GPU)."
    )
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
