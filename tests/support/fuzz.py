"""Schemathesis against the app's own OpenAPI schema, in-process: every operation, valid and invalid
inputs, under each credential (no key, an unknown key, each role, the admin token). A response fails
when it is a 5xx, has a status or content type the schema does not document, does not match its
documented schema, or is an error outside the OpenAI error shape.

Used by the CI test (tests/gateway/http/test_fuzz.py, a short run) and benchmarks/fuzz_api.py (long)."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
_ERROR_KEYS = {"message", "type", "param", "code"}


@dataclass
class FuzzReport:
    """Responses counted by operation, credential and status; the failures found (deduplicated)."""

    statuses: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        return sum(self.statuses.values())

    def by_status(self) -> dict[int, int]:
        out: Counter[int] = Counter()
        for (_, _, status), n in self.statuses.items():
            out[status] += n
        return dict(sorted(out.items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "server_errors": sum(n for (_, _, s), n in self.statuses.items() if s >= 500),
            "by_status": {str(k): v for k, v in self.by_status().items()},
            "by_operation": {f"{op} [{who}] {status}": n for (op, who, status), n in sorted(self.statuses.items())},
            "failures": self.failures,
        }


def error_shape_problem(status: int, body: bytes) -> str | None:
    """Why an error response is not `{"error": {"message", "type", "param", "code"}}`, or None."""
    if status < 400:
        return None
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return f"{status} body is not an OpenAI error object: {body[:200]!r}"
    if not isinstance(error, dict) or set(error) != _ERROR_KEYS:
        return f"{status} error has keys {sorted(error) if isinstance(error, dict) else error!r}"
    if not isinstance(error["message"], str) or not isinstance(error["type"], str):
        return f"{status} error message/type are not strings"
    return None


def fuzz_app(
    app: FastAPI,
    credentials: Mapping[str, dict[str, str]],
    *,
    served_model: str,
    max_examples: int,
    derandomize: bool = True,
    modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE),
) -> FuzzReport:
    """Fuzz every operation of `app` under every credential; `max_examples` per operation and mode."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    report = FuzzReport()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in modes:

            @settings(
                max_examples=max_examples,
                deadline=None,
                database=None,
                derandomize=derandomize,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                body = case.body
                if (
                    case.path == "/v1/chat/completions"
                    and isinstance(body, dict)
                    and isinstance(body.get("model"), str)
                ):
                    body["model"] = served_model  # past the 404 for an unknown model, into the chat pipeline
                for who, headers in credentials.items():
                    response = case.call(headers=headers)
                    report.statuses[(operation.label, who, response.status_code)] += 1
                    problem = error_shape_problem(response.status_code, response.content)
                    try:
                        case.validate_response(response, checks=CHECKS, headers=headers)
                    except (Exception, BaseExceptionGroup) as exc:  # keep one example per kind of failure
                        problem = problem or f"{type(exc).__name__}: {exc}"
                    if problem is not None:
                        key = f"{operation.label} [{who}] {response.status_code}: {problem.splitlines()[0][:200]}"
                        report.failures.setdefault(key, f"{problem[:2000]}\nrequest: {case.body!r}"[:3000])

            # Unsatisfiable: nothing invalid to send in this mode (a route without parameters or body).
            with contextlib.suppress(Unsatisfiable):
                run()
    return report
