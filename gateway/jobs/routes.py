"""Unlearning jobs: submit, watch, cancel (`/v1/unlearn/jobs`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from gateway.http.auth import require_operator
from gateway.errors import ErrorBody
from gateway.jobs.protocol import JobList, JobStatus, JobSubmit

router = APIRouter(dependencies=[Depends(require_operator)])

_ERRORS = {code: {"model": ErrorBody} for code in (401, 404, 422, 503)}


@router.post("/v1/unlearn/jobs", status_code=201, response_model=JobStatus, responses=_ERRORS)
async def submit_job(body: JobSubmit, request: Request) -> JSONResponse:
    job = await request.app.state.jobs.submit(body)
    return JSONResponse(job.model_dump(), status_code=201)


@router.get("/v1/unlearn/jobs", response_model=JobList, responses=_ERRORS)
async def list_jobs(
    request: Request,
    state: str | None = Query(None, pattern="^(queued|running|evaluating|published|rejected|failed|cancelled)$"),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> JobList:
    return await request.app.state.jobs.list(state=state, limit=limit, offset=offset)


@router.get("/v1/unlearn/jobs/{job_id}", response_model=JobStatus, responses=_ERRORS)
async def show_job(job_id: str, request: Request) -> JobStatus:
    return await request.app.state.jobs.get(job_id)


@router.post("/v1/unlearn/jobs/{job_id}/cancel", response_model=JobStatus, responses=_ERRORS)
async def cancel_job(job_id: str, request: Request) -> JobStatus:
    return await request.app.state.jobs.cancel(job_id)
