"""Unlearning jobs: submit, watch, cancel (`/v1/unlearn/jobs`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from gateway.errors import error_responses
from gateway.http.auth import Requires
from gateway.jobs.protocol import JobList, JobStatus, JobSubmit
from gateway.jobs.service import UnlearnService
from gateway.ledger.actors import Actor, Role
from gateway.ledger.states import JobState

# Jobs change the weights: operators only (gateway.http.auth).
OPERATOR = Depends(Requires(Role.OPERATOR))
router = APIRouter()

_ERRORS = error_responses(401, 403, 404, 413, 422, 429, 503)


def _jobs(request: Request) -> UnlearnService:
    jobs: UnlearnService = request.app.state.jobs  # set by create_app
    return jobs


@router.post(
    "/v1/unlearn/jobs", status_code=201, response_model=JobStatus, responses={**_ERRORS, **error_responses(400)}
)
async def submit_job(body: JobSubmit, request: Request, actor: Annotated[Actor, OPERATOR]) -> JSONResponse:
    job = await _jobs(request).submit(body, actor=actor)
    return JSONResponse(job.model_dump(), status_code=201)


@router.get("/v1/unlearn/jobs", response_model=JobList, responses=_ERRORS, dependencies=[OPERATOR])
async def list_jobs(
    request: Request,
    state: JobState | None = Query(None, description="only jobs in this state"),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> JobList:
    return await _jobs(request).list(state=state, limit=limit, offset=offset)


@router.get("/v1/unlearn/jobs/{job_id}", response_model=JobStatus, responses=_ERRORS, dependencies=[OPERATOR])
async def show_job(job_id: str, request: Request) -> JobStatus:
    return await _jobs(request).get(job_id)


@router.post("/v1/unlearn/jobs/{job_id}/cancel", response_model=JobStatus, responses=_ERRORS)
async def cancel_job(job_id: str, request: Request, actor: Annotated[Actor, OPERATOR]) -> JobStatus:
    return await _jobs(request).cancel(job_id, actor=actor)
