"""Unlearning jobs: submit, watch, cancel (`/v1/unlearn/jobs`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from gateway.errors import ErrorBody
from gateway.http.auth import require_operator
from gateway.jobs.protocol import JobList, JobStatus, JobSubmit
from gateway.jobs.service import UnlearnService
from gateway.ledger.states import JobState

router = APIRouter(dependencies=[Depends(require_operator)])

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (401, 404, 422, 503)}


def _jobs(request: Request) -> UnlearnService:
    jobs: UnlearnService = request.app.state.jobs  # set by create_app
    return jobs


@router.post("/v1/unlearn/jobs", status_code=201, response_model=JobStatus, responses=_ERRORS)
async def submit_job(body: JobSubmit, request: Request) -> JSONResponse:
    job = await _jobs(request).submit(body)
    return JSONResponse(job.model_dump(), status_code=201)


@router.get("/v1/unlearn/jobs", response_model=JobList, responses=_ERRORS)
async def list_jobs(
    request: Request,
    state: JobState | None = Query(None, description="only jobs in this state"),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> JobList:
    return await _jobs(request).list(state=state, limit=limit, offset=offset)


@router.get("/v1/unlearn/jobs/{job_id}", response_model=JobStatus, responses=_ERRORS)
async def show_job(job_id: str, request: Request) -> JobStatus:
    return await _jobs(request).get(job_id)


@router.post("/v1/unlearn/jobs/{job_id}/cancel", response_model=JobStatus, responses=_ERRORS)
async def cancel_job(job_id: str, request: Request) -> JobStatus:
    return await _jobs(request).cancel(job_id)
