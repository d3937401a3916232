"""Weight versions as serving sees them: is a candidate safe to load, import one made elsewhere,
and which version serves (the ledger's pointer; the base model when nothing was promoted).

An import starts its own lineage (no parent) unless it proves one: its `manifest.json` names a
version the ledger has (as its `version_id` or `parent_version`) *and* the import's weight files,
hashed now, are byte for byte the weight files the ledger recorded for that version. A manifest is
text anyone can write: naming a parent, or copying its digests, proves nothing about the weights
next to it; identical weights do. Certificates follow parents to say whether the serving weights
descend from an unlearned version, so an unproven parent would let them overclaim.

Versions are private: directories 0700, files 0600, and the versions directory is fsynced after
the rename that publishes one.

No Ray here: the rolling swap itself is `gateway.weights.controller`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.chat.engines.base import MODEL_MARKER, model_version
from gateway.ledger import Ledger
from gateway.ledger.records import VersionRecord
from unlearn_jobs.evaluate import redact_metrics
from unlearn_jobs.publish import (
    DIR_MODE,
    MANIFEST,
    MANIFEST_SCHEMA,
    VersionError,
    file_checksums,
    fsync_dir,
    fsync_tree,
    make_private,
    new_version_id,
    read_manifest,
    sha256_file,
    verify_version,
    versions_root,
)

# Architecture fields a version must share with the served model: any difference changes tensor
# shapes or how vLLM runs them, and `reload_weights` would fail half-way or serve nonsense.
ARCHITECTURE_KEYS = (
    "architectures",
    "model_type",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
    "tie_word_embeddings",
    "max_position_embeddings",
    "rope_theta",
    "hidden_act",
)
# A file the import copies: weights, config, tokenizer and generation settings; not caches or code.
_IMPORT_SUFFIXES = (".safetensors", ".json", ".txt", ".model", ".jinja")
_MAX_HEADER_BYTES = 100 * 1024 * 1024


class VersionInvalidError(ValueError):
    """A weight directory must not be served: tampered, incomplete or a different architecture."""


@dataclass(frozen=True)
class TensorSpec:
    dtype: str
    shape: tuple[int, ...]


def safetensors_header(path: Path) -> dict[str, TensorSpec]:
    """Tensor names, dtypes and shapes from a .safetensors header, without reading the data."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(8)
            if len(raw) != 8:
                raise VersionInvalidError(f"{path.name}: not a safetensors file (too short)")
            (size,) = struct.unpack("<Q", raw)
            if size <= 0 or size > _MAX_HEADER_BYTES:
                raise VersionInvalidError(f"{path.name}: not a safetensors file (header size {size})")
            header = json.loads(fh.read(size))
    except (OSError, ValueError) as exc:
        if isinstance(exc, VersionInvalidError):
            raise
        raise VersionInvalidError(f"{path.name}: unreadable safetensors header ({exc})") from None
    return {
        name: TensorSpec(str(meta["dtype"]), tuple(int(d) for d in meta["shape"]))
        for name, meta in header.items()
        if name != "__metadata__"
    }


def tensor_table(model_dir: Path) -> dict[str, TensorSpec]:
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise VersionInvalidError(f"{model_dir}: no .safetensors weights")
    table: dict[str, TensorSpec] = {}
    for f in files:
        table.update(safetensors_header(f))
    return table


def _config(model_dir: Path) -> dict[str, Any]:
    try:
        config: dict[str, Any] = json.loads((Path(model_dir) / "config.json").read_text())
        return config
    except FileNotFoundError:
        raise VersionInvalidError(f"{model_dir}: no config.json") from None
    except ValueError as exc:
        raise VersionInvalidError(f"{model_dir}/config.json is not valid JSON ({exc})") from None


def check_compatible(served_dir: Path, candidate_dir: Path) -> None:
    """Raise VersionInvalidError unless `candidate_dir` has the served model's architecture and
    exactly its tensor names and shapes (dtypes may differ: the engine casts on load)."""
    served, candidate = _config(served_dir), _config(candidate_dir)
    diffs = [
        f"{k}: served {served.get(k)!r}, candidate {candidate.get(k)!r}"
        for k in ARCHITECTURE_KEYS
        if served.get(k) != candidate.get(k)
    ]
    if diffs:
        raise VersionInvalidError("config does not match the served architecture: " + "; ".join(diffs[:5]))
    want, have = tensor_table(served_dir), tensor_table(candidate_dir)
    missing, unexpected = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    if missing or unexpected:
        raise VersionInvalidError(
            f"tensor names differ from the served model: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    shapes = [
        f"{n}: served {list(want[n].shape)}, candidate {list(have[n].shape)}"
        for n in sorted(want)
        if want[n].shape != have[n].shape
    ]
    if shapes:
        raise VersionInvalidError("tensor shapes differ from the served model: " + "; ".join(shapes[:5]))


def verify_files(version_dir: Path, *, weights: bool = True) -> dict[str, Any]:
    """Every file listed in the manifest is there with its sha256, and nothing else is (the weight files'
    sha256 only with `weights`); returns the manifest."""
    try:
        return verify_version(version_dir, weights=weights)
    except VersionError as exc:
        raise VersionInvalidError(str(exc)) from None


def weight_digests(record: VersionRecord) -> dict[str, str]:
    """The sha256 of each weight file as the version's manifest lists them; empty for the base model (it
    has no manifest: it is what the replicas started from). Raises VersionInvalidError when the manifest
    cannot be read."""
    if record.manifest.get("base"):
        return {}
    try:
        manifest = read_manifest(record.path)
    except VersionError as exc:
        raise VersionInvalidError(str(exc)) from None
    return _weight_digests(manifest["files"])


def validate_candidate(served_dir: Path, record: VersionRecord, loaders_check: dict[str, str] | None = None) -> None:
    """Everything checked before any replica is touched (the base model has no manifest: it is
    what the replicas started from).

    `loaders_check`: the weight digests (`weight_digests`) that every replica was given to check the
    bytes it loads against (the replicas' staging hashes what it reads). The weight files are then
    not hashed here as well (one hash per loader instead of one more in the controller on the same
    cores); they must still be listed, present and unchanged in the manifest."""
    path = Path(record.path)
    if not path.is_dir():
        raise VersionInvalidError(f"version {record.id}: directory {path} is missing")
    if record.manifest.get("base"):
        return
    manifest = verify_files(path, weights=loaders_check is None)
    if loaders_check is not None and _weight_digests(manifest["files"]) != loaders_check:
        raise VersionInvalidError(f"version {record.id}: its manifest changed while the swap was starting")
    check_compatible(served_dir, path)


def ensure_base_version(ledger: Ledger, base_dir: str | Path) -> VersionRecord:
    """The base model is the root of the version tree (parent of the first published versions)."""
    version_id = model_version(base_dir)
    existing = ledger.get_version(version_id)
    if existing is not None:
        return existing
    try:
        return ledger.add_version(version_id, str(base_dir), {"version_id": version_id, "base": True}, parent_id=None)
    except Exception:  # a second deployment registered it at the same moment
        existing = ledger.get_version(version_id)
        if existing is None:
            raise
        return existing


def serving_record(ledger: Ledger, base_dir: str | Path) -> VersionRecord:
    """The version replicas must serve: the promoted one, else the base model."""
    return ledger.serving_version() or ensure_base_version(ledger, base_dir)


def _weight_digests(files: dict[str, Any]) -> dict[str, str]:
    return {name: str(digest) for name, digest in files.items() if name.endswith(".safetensors")}


def proven_parent(ledger: Ledger, src: str | Path) -> str | None:
    """The ledger version an imported directory provably holds, or None: the import starts its own
    lineage (see the module docstring for the rule)."""
    try:
        source = Path(src).expanduser()
        manifest = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, RuntimeError, ValueError):
        return None
    if not isinstance(manifest, dict):
        return None
    weights = {f.name: sha256_file(f) for f in sorted(source.glob("*.safetensors")) if f.is_file()}
    if not weights:
        return None
    for key in ("version_id", "parent_version"):
        name = manifest.get(key)
        if not isinstance(name, str) or not name:
            continue
        record = ledger.get_version(name)
        files = (record.manifest or {}).get("files") if record is not None else None
        if isinstance(files, dict) and _weight_digests(files) == weights:
            return name
    return None


def import_directory(
    src: str | Path,
    versions_dir: str | Path,
    served_dir: str | Path,
    *,
    parent_version: str | None,
    note: str | None = None,
) -> tuple[str, Path, dict[str, Any]]:
    """Copy a weight directory made elsewhere into `versions_dir/<id>` with a sha256 manifest.

    Validated first (architecture, tensor names and shapes), written into a temp directory beside
    the target and renamed, so a crash leaves either the whole version or none. `parent_version`
    must be proven (`proven_parent`), or None.
    """
    try:
        source = Path(src).expanduser()
        found = source.is_dir()
    except (OSError, RuntimeError, ValueError) as exc:  # too long, no such user (~name), ...
        raise VersionInvalidError(f"{src}: not a usable path ({type(exc).__name__})") from None
    if not found:
        raise VersionInvalidError(f"{source}: no such directory")
    check_compatible(Path(served_dir), source)
    root = versions_root(versions_dir)
    vid = new_version_id()
    tmp = root / f".tmp-{vid}-{secrets.token_hex(4)}"
    tmp.mkdir(mode=DIR_MODE)
    try:
        for f in sorted(source.iterdir()):
            if f.is_file() and f.name not in (MANIFEST, MODEL_MARKER) and f.suffix in _IMPORT_SUFFIXES:
                shutil.copy2(f, tmp / f.name)
        manifest: dict[str, Any] = {
            "schema": MANIFEST_SCHEMA,
            "version_id": vid,
            "parent_version": parent_version,
            "method": "import",
            "hyperparameters": {},
            "forget_ids": [],
            "metrics_before": None,
            "metrics_after": None,
            "created_at": datetime.now(UTC).isoformat(),
            "files": file_checksums(tmp),
            "extra": {
                "imported_from": str(source.resolve()),
                # "proven": the weights are the parent's own (module docstring); "own": a new lineage.
                "lineage": "proven" if parent_version else "own",
                **({"note": note} if note else {}),
            },
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        make_private(tmp)
        fsync_tree(tmp)
        final = root / vid
        os.rename(tmp, final)
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return vid, final, manifest


def redact_manifests(versions_dir: str | Path) -> int:
    """Rewrite `manifest.json` of versions published before job metrics were scores-only, without their
    text samples (forget prompts and model outputs). The manifest is not among a version's checksummed
    files. Returns how many were rewritten."""
    from gateway.home import write_private

    rewritten = 0
    for path in sorted(Path(versions_dir).glob(f"*/{MANIFEST}")):
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        clean = redact_metrics(manifest)
        if clean != manifest:
            write_private(path, json.dumps(clean, indent=2, sort_keys=True).encode())
            rewritten += 1
    return rewritten


def version_fields(record: VersionRecord) -> dict[str, Any]:
    """A version as the admin API shows it."""
    manifest = record.manifest or {}
    return {
        "id": record.id,
        "parent": record.parent_id,
        "method": record.method or ("base" if manifest.get("base") else None),
        "created": record.created_at.isoformat() if record.created_at else None,
        "path": record.path,
        "serving": record.serving,
        "forget_ids": list(manifest.get("forget_ids") or ()),
        "metrics": {
            "before": redact_metrics(manifest.get("metrics_before")),
            "after": redact_metrics(manifest.get("metrics_after")),
        },
    }
