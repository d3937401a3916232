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


class Listing:
    def __init__(self, listing: dict | None = None, fail: bool = False) -> None:
        self.listing, self.fail = listing, fail

    async def list(self) -> dict:
        if self.fail:
            raise RuntimeError("ModelVersions is restarting")
        return self.listing or {}


async def test_a_certificate_gets_each_replicas_version_or_says_it_does_not_know():
    from gateway.serve.deployments import replica_versions

    live = {"replicas_known": True, "replicas": [{"replica": "llm-0", "version": "v1", "verified": True}]}
    assert await replica_versions(Listing(live), 1.0) == live["replicas"]
    assert await replica_versions(Listing({"replicas_known": False, "replicas": []}), 1.0) is None
    assert await replica_versions(Listing(fail=True), 1.0) is None


def test_a_serving_version_that_fails_verification_makes_the_replica_refuse(tiny_model_dir, tmp_path):
    import json

    from gateway.config import load_config
    from gateway.ledger import Ledger
    from gateway.serve.deployments import _on_serving_version

    config = load_config(env={"LETHE_MODEL": str(tiny_model_dir), "LETHE_HOME": str(tmp_path)})
    version = tmp_path / "versions" / "v-tampered"
    version.mkdir(parents=True)
    (version / "model.safetensors").write_bytes(b"changed after publishing")
    manifest = {"version_id": "v-tampered", "files": {"model.safetensors": "0" * 64}}
    (version / "manifest.json").write_text(json.dumps(manifest))
    ledger = Ledger.open(config.ledger_url)
    assert _on_serving_version(config) == (config, None)  # the base model serves: nothing to verify
    ledger.add_version("v-tampered", str(version), manifest, parent_id=None, method="npo")
    ledger.set_serving("v-tampered", action="promote")
    ledger.close()
    start, unverified = _on_serving_version(config)
    # It keeps the base model loaded only to stay swappable; it serves nothing until a verified swap.
    assert start == config and unverified is not None
    assert "v-tampered fails verification" in unverified and "checksum mismatch" in unverified
