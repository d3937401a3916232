"""gateway.serve.deployments: what the shells add to their cores (no Ray cluster needed)."""

from __future__ import annotations

import asyncio

from gateway.serve.deployments import latest_leakage


class Versions:
    def __init__(self, delay_s: float = 0.0, fail: bool = False) -> None:
        self.delay_s = delay_s
        self.fail = fail

    async def leakage(self) -> dict | None:
        await asyncio.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("ModelVersions is restarting")
        return {"version": "v1", "leakage_ratio": 0.0}


async def test_a_certificate_gets_the_latest_leakage_report_or_none_in_time():
    assert await latest_leakage(Versions(), 1.0) == {"version": "v1", "leakage_ratio": 0.0}
    assert await latest_leakage(Versions(delay_s=5.0), 0.05) is None
    assert await latest_leakage(Versions(fail=True), 1.0) is None
