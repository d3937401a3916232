"""Stand-ins for a remote deployment behind a facade: scripted answers, hangs, and Ray-shaped failures.

A facade unit test puts the real facade (ForgetService, UnlearnService, VersionsService) in front of
a fake of the Protocol it calls; the fake's calls can hang (a deployment that never answers), raise a
wrapped domain error (Ray re-raises a replica's exception as a RayTaskError whose `cause` is the
original) or raise a bare error (a replica that died).
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

T = TypeVar("T")


class RemoteTaskError(Exception):
    """Like Ray's RayTaskError: the exception a replica raised travels as `cause`."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"remote call failed: {cause!r}")
        self.cause = cause


class DeadReplicaError(Exception):
    """Like Ray's ActorDiedError: the deployment's replica is gone, there is no domain error behind it."""


class ScriptedRemote:
    """Base of the fakes: every call is recorded, then hangs, raises `failure`, or answers."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.failure: BaseException | None = None
        self.hang = False

    async def answer(self, call: str, args: tuple[Any, ...], value: T) -> T:
        self.calls.append((call, args))
        if self.hang:
            await asyncio.sleep(3600)
        if self.failure is not None:
            raise self.failure
        return value
