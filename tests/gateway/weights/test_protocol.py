"""Import requests name a path the filesystem could hold: anything else is a 422 naming `path`, never an
OSError turned 503 (a schemathesis finding: an over-long path came back as 503 "OSError")."""

from __future__ import annotations

import httpx
import pytest

from gateway.weights.store import VersionInvalidError, import_directory
from tests.support.api_fakes import ADMIN_TOKEN, build_gateway


@pytest.mark.parametrize("path", ["/" + "a" * 256, "/tmp/" + "b/" * 2100, "/tmp/x\x00y"])
async def test_impossible_import_paths_are_a_422_naming_the_path(tmp_path, path):
    gw = build_gateway(tmp_path / "home", max_body_bytes=1 << 20)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url="http://test") as http:
        resp = await http.post(
            "/v1/admin/models/versions", json={"path": path}, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
        )
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["param"] == "path" and gw.versions.actors == []


def test_the_import_itself_refuses_an_unusable_path(tmp_path):
    for path in ("/" + "a" * 300, "~no-such-user-here/x"):
        with pytest.raises(VersionInvalidError):
            import_directory(path, tmp_path / "versions", tmp_path / "base", parent_version=None)
