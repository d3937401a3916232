"""A small HTTP client of the operator API, used by the `lethe forget|unlearn|models` commands."""

from __future__ import annotations

import os
from typing import Any

import httpx


class APIClientError(RuntimeError):
    """The gateway answered with an error (its OpenAI-style message) or could not be reached."""


def default_url() -> str:
    return os.environ.get("LETHE_URL") or f"http://127.0.0.1:{os.environ.get('LETHE_PORT', '8000')}"


class OperatorClient:
    """>>> OperatorClient().post("/v1/forget", {"literals": ["+47 912 33 457"]})"""

    def __init__(self, url: str | None = None, token: str | None = None, timeout_s: float = 120.0) -> None:
        self.url = (url or default_url()).rstrip("/")
        if token is None:  # an API key of the right role, else the bootstrap operator token
            token = os.environ.get("LETHE_API_KEY") or os.environ.get("LETHE_ADMIN_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, params: dict[str, Any] | None = None
    ) -> Any:
        try:
            resp = self._http.request(
                method, path, json=body, params={k: v for k, v in (params or {}).items() if v is not None}
            )
        except httpx.HTTPError as exc:
            raise APIClientError(f"cannot reach the gateway at {self.url}: {exc} (is `lethe serve` running?)") from None
        if resp.status_code >= 400:
            try:
                message = resp.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = resp.text[:500]
            raise APIClientError(f"{resp.status_code}: {message}")
        return resp.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, body or {})
