"""`LETHE_HOME` on disk: private directories (0700) and files (0600), written whole and published durably.

Modes are set with chmod after creation, so they do not depend on the process umask. A rename
that publishes something (a weight version, a key, a probe report) is followed by an fsync of the
directory that holds it: without it, a crash can lose the rename after the caller was told it is done.

>>> home = private_dir(Path("~/.lethe").expanduser())
>>> write_private(home / "probes" / "latest.json", b"{}")   # 0600 file in a 0700 dir, renamed in, dir fsynced
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from unlearn_jobs.publish import DIR_MODE, FILE_MODE, fsync_dir, make_private

__all__ = ["DIR_MODE", "FILE_MODE", "fsync_dir", "make_private", "private_dir", "private_file", "write_private"]


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create `path` (and missing parents) and make it 0700; every directory this call creates is
    0700 too. An existing parent keeps its mode: it may be a directory the operator chose."""
    target = Path(path)
    missing = []
    probe = target
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    target.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    for d in [target, *missing]:
        os.chmod(d, DIR_MODE)
    return target


def private_file(path: str | os.PathLike[str]) -> None:
    """Make an existing file 0600 (a no-op when it is not there)."""
    with contextlib.suppress(FileNotFoundError):
        os.chmod(path, FILE_MODE)


def write_private(path: str | os.PathLike[str], data: bytes) -> Path:
    """Replace `path` with `data` atomically: a 0600 temp file beside it, fsynced, renamed over it,
    then the directory fsynced. The directory is created 0700 when missing."""
    target = Path(path)
    private_dir(target.parent)
    tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
    return target
