"""LETHE_HOME on disk: private modes whatever the umask, atomic writes, a directory fsync after each publish."""

from __future__ import annotations

import os
import stat

import pytest

from gateway.home import private_dir, write_private


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask():
    old = os.umask(0o000)  # the most permissive umask: modes must come from chmod, not from it
    yield
    os.umask(old)


def dir_fsyncs(monkeypatch) -> list[str]:
    """Record the directories os.fsync is called on (by the path of the descriptor)."""
    seen: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def test_private_dir_makes_every_created_directory_0700(tmp_path, open_umask):
    os.chmod(tmp_path, 0o755)
    home = private_dir(tmp_path / "a" / "b")
    assert mode(home) == 0o700 and mode(tmp_path / "a") == 0o700
    assert mode(tmp_path) == 0o755  # an existing parent is the operator's, left alone
    os.chmod(home, 0o755)
    private_dir(home)  # an existing home made by an older version is tightened
    assert mode(home) == 0o700


def test_write_private_is_0600_atomic_and_fsyncs_the_directory(tmp_path, open_umask, monkeypatch):
    synced = dir_fsyncs(monkeypatch)
    target = write_private(tmp_path / "probes" / "latest.json", b'{"n": 1}')
    assert target.read_bytes() == b'{"n": 1}' and mode(target) == 0o600 and mode(target.parent) == 0o700
    assert str(target.parent) in synced
    write_private(target, b"{}")
    assert target.read_bytes() == b"{}" and [p.name for p in target.parent.iterdir()] == ["latest.json"]
