"""Weight versions on disk: publish a model as `<versions>/<id>` with a sha256 manifest, atomically, and verify one."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = 1
_TMP_PREFIX = ".tmp-"
# Weights unlearned from a forget set still carry traces of it: versions are private to the gateway's user.
DIR_MODE = 0o700
FILE_MODE = 0o600


class VersionError(RuntimeError):
    """A weight version directory is missing, incomplete or does not match its manifest."""


@dataclass(frozen=True)
class PublishedVersion:
    version_id: str
    path: Path
    manifest: dict[str, Any]


def new_version_id() -> str:
    """Sortable by creation time, unique without coordination."""
    return datetime.now(UTC).strftime("v%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fsync_tree(root: Path) -> None:
    """Flush every file and directory under `root` to disk (call before renaming a version into place)."""
    # Durable before the rename: a crash after it must not expose a version with torn files.
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    for d in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        fsync_dir(d)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a directory's entries: call after a rename into it, or the rename can be lost in a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_private(root: str | os.PathLike[str]) -> None:
    """chmod `root` and every directory under it 0700, every file 0600 (whatever the umask was)."""
    top = Path(root)
    os.chmod(top, DIR_MODE)
    for path in top.rglob("*"):
        if path.is_symlink():
            continue
        os.chmod(path, DIR_MODE if path.is_dir() else FILE_MODE)


def versions_root(versions_dir: str | os.PathLike[str]) -> Path:
    """The versions directory, created if missing, 0700."""
    root = Path(versions_dir)
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, DIR_MODE)
    return root


def version_files(root: Path) -> list[str]:
    """Every file under `root` but the manifest, by relative path (what the manifest must list)."""
    return [p.relative_to(root).as_posix() for p in sorted(root.rglob("*")) if p.is_file() and p.name != MANIFEST]


def file_checksums(root: Path) -> dict[str, str]:
    """The manifest's `files`: sha256 of every file under `root` but the manifest, by relative path."""
    return {name: sha256_file(root / name) for name in version_files(root)}


def publish_version(
    model: Any,
    tokenizer: Any,
    versions_dir: str | Path,
    *,
    parent_version: str | None,
    method: str,
    hyperparameters: Mapping[str, Any],
    forget_ids: Sequence[str],
    metrics_before: Mapping[str, Any] | None,
    metrics_after: Mapping[str, Any] | None,
    version_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> PublishedVersion:
    """Save weights (safetensors), config and tokenizer plus `manifest.json`, then rename into place.

    Everything is written into a temp dir beside the target (same filesystem, so the rename is
    atomic); any failure removes it, so `<versions>/<id>` either exists complete or not at all.
    """
    root = versions_root(versions_dir)
    vid = version_id or new_version_id()
    if not vid or "/" in vid or vid.startswith("."):
        raise ValueError(f"bad version id {vid!r}")
    final = root / vid
    if final.exists():
        raise VersionError(f"version {vid} already exists at {final}")
    tmp = root / f"{_TMP_PREFIX}{vid}-{secrets.token_hex(4)}"
    tmp.mkdir(mode=DIR_MODE)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        manifest: dict[str, Any] = {
            "schema": MANIFEST_SCHEMA,
            "version_id": vid,
            "parent_version": parent_version,
            "method": method,
            "hyperparameters": dict(hyperparameters),
            "forget_ids": list(forget_ids),
            "metrics_before": metrics_before,
            "metrics_after": metrics_after,
            "created_at": datetime.now(UTC).isoformat(),
            "files": file_checksums(tmp),
            **({"extra": dict(extra)} if extra else {}),
        }
        if not any(name.endswith(".safetensors") for name in manifest["files"]):
            raise VersionError("model.save_pretrained wrote no .safetensors file")
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        make_private(tmp)
        fsync_tree(tmp)
        os.rename(tmp, final)
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PublishedVersion(vid, final, manifest)


def read_manifest(path: str | Path) -> dict[str, Any]:
    p = Path(path) / MANIFEST
    if not p.is_file():
        raise VersionError(f"{path}: no {MANIFEST}")
    try:
        manifest = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise VersionError(f"{p}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise VersionError(f"{p}: manifest has no files table")
    return manifest


def verify_version(path: str | Path, *, weights: bool = True) -> dict[str, Any]:
    """Raise VersionError unless every file in the manifest exists with its sha256, and no other file does;
    returns the manifest. `weights` False: the .safetensors files are checked to be there, not hashed (for a
    caller whose loaders hash the bytes they load against the manifest's digests)."""
    root = Path(path)
    if not root.is_dir():
        raise VersionError(f"{root}: no such version directory")
    manifest = read_manifest(root)
    expected: dict[str, str] = manifest["files"]
    for name, digest in sorted(expected.items()):
        f = root / name
        if not f.is_file():
            raise VersionError(f"{root}: missing file {name}")
        if not weights and name.endswith(".safetensors"):
            continue
        actual = sha256_file(f)
        if actual != digest:
            raise VersionError(f"{root}: checksum mismatch for {name} (manifest {digest[:12]}…, file {actual[:12]}…)")
    extra = sorted(set(version_files(root)) - set(expected))  # names only: each file is hashed once
    if extra:
        raise VersionError(f"{root}: files not in the manifest: {extra}")
    return manifest


def list_versions(versions_dir: str | Path) -> list[dict[str, Any]]:
    """Manifests of published versions, oldest first; temp dirs of unfinished publishes are not versions."""
    root = Path(versions_dir)
    if not root.is_dir():
        return []
    out = []
    for d in sorted(root.iterdir()):
        if d.is_dir() and not d.name.startswith("."):
            try:
                out.append(read_manifest(d))
            except VersionError:
                continue
    return sorted(out, key=lambda m: m.get("created_at", ""))


def remove_stale_temp(versions_dir: str | Path, older_than_s: float = 3600.0) -> list[Path]:
    """Delete temp dirs left by a publisher killed mid-write (kill -9 skips our cleanup)."""
    root = Path(versions_dir)
    removed = []
    if root.is_dir():
        now = time.time()
        for d in root.iterdir():
            if d.is_dir() and d.name.startswith(_TMP_PREFIX) and now - d.stat().st_mtime > older_than_s:
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d)
    return removed
