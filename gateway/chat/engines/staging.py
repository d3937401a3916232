"""Weights staged in memory ahead of a swap: read, checked against the manifest, ready to copy in.

A replica stages the next version while it still serves the old one, so the part of a swap during
which it admits no request is only the copy into the engine. The bytes staged are the bytes hashed:
a file changed after the controller verified it fails here, before the engine is touched.

>>> staged = StagedWeights.start("/lethe/versions/v1", digests={"model.safetensors": "ab12…"})
>>> staged.state()            # "pending" | "ready" | "failed: <reason>"
>>> tensors = staged.result()  # [(checkpoint name, tensor)], views of the staged buffers
"""

from __future__ import annotations

import hashlib
import json
import mmap
import threading
from pathlib import Path
from typing import Any

import torch

MANIFEST = "manifest.json"

# safetensors' dtype names (https://github.com/huggingface/safetensors, format.md).
_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}


class StagingError(RuntimeError):
    """The staged files are not the version's (checksum, format): nothing was loaded."""


def manifest_digests(path: str | Path) -> dict[str, str]:
    """The sha256 of each weight file the version's manifest lists; empty for a folder without one
    (a base model: the replicas started from it, nothing to compare against)."""
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        return {}
    return {str(name): str(digest) for name, digest in files.items() if str(name).endswith(".safetensors")}


def tensors_from_buffer(buffer: bytearray | mmap.mmap, source: str = "") -> list[tuple[str, torch.Tensor]]:
    """The tensors of one safetensors file held in `buffer`, as views of it (no copy)."""
    if len(buffer) < 8:
        raise StagingError(f"{source}: not a safetensors file (too short)")
    size = int.from_bytes(buffer[:8], "little")
    if size <= 0 or 8 + size > len(buffer):
        raise StagingError(f"{source}: not a safetensors file (header length {size})")
    try:
        header: dict[str, Any] = json.loads(bytes(buffer[8 : 8 + size]))
    except ValueError as exc:
        raise StagingError(f"{source}: unreadable safetensors header: {exc}") from None
    base = 8 + size
    out = []
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(meta.get("dtype", ""))
        if dtype is None:
            raise StagingError(f"{source}: tensor {name} has unsupported dtype {meta.get('dtype')!r}")
        start, end = (int(x) for x in meta["data_offsets"])
        shape = [int(x) for x in meta["shape"]]
        itemsize = torch.empty((), dtype=dtype).element_size()
        count = (end - start) // itemsize
        if base + end > len(buffer) or count * itemsize != end - start or count != _numel(shape):
            raise StagingError(f"{source}: tensor {name} does not fit its declared shape {shape}")
        if count == 0:
            out.append((name, torch.empty(shape, dtype=dtype)))
        else:
            out.append((name, torch.frombuffer(buffer, dtype=dtype, count=count, offset=base + start).view(shape)))
    return out


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


class StagedWeights:
    """One version's weight files read into memory by a background thread (reading and hashing
    release the GIL: the engine keeps generating meanwhile)."""

    def __init__(self, path: str, digests: dict[str, str]) -> None:
        self.path = path
        self._digests = digests
        self._tensors: list[tuple[str, torch.Tensor]] | None = None
        self._error: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lethe-stage", daemon=True)

    @classmethod
    def start(cls, path: str, digests: dict[str, str]) -> StagedWeights:
        staged = cls(path, digests)
        staged._thread.start()
        return staged

    def _run(self) -> None:
        try:
            self._tensors = self._read()
        except Exception as exc:  # reported to the caller through state()/result()
            self._error = str(exc) or type(exc).__name__
        finally:
            self._done.set()

    def _read(self) -> list[tuple[str, torch.Tensor]]:
        folder = Path(self.path)
        files = sorted(folder.glob("*.safetensors"))
        if not files:
            raise StagingError(f"{self.path}: no .safetensors files")
        names = {f.name for f in files}
        if self._digests and names != set(self._digests):
            raise StagingError(
                f"{self.path}: weight files {sorted(names)} differ from the manifest's {sorted(self._digests)}"
            )
        tensors: list[tuple[str, torch.Tensor]] = []
        for file in files:
            with file.open("rb") as fh:
                size = file.stat().st_size
                # An anonymous mapping, not a bytearray: a bytearray is zero-filled while holding the GIL
                # (0.15 s for 269 MB here, 1.45 s the first time in a replica), which stalls the replica's
                # event loop and the engine in it; the mapping's pages are filled by the read, which
                # releases the GIL.
                buffer: mmap.mmap | bytearray = mmap.mmap(-1, size) if size else bytearray()
                if fh.readinto(memoryview(buffer)) != size:
                    raise StagingError(f"{file.name}: short read")
            expected = self._digests.get(file.name)
            if expected is not None and hashlib.sha256(buffer).hexdigest() != expected:
                raise StagingError(f"checksum mismatch: {file.name} is not the file the manifest lists")
            tensors.extend(tensors_from_buffer(buffer, file.name))
        return tensors

    def state(self) -> str:
        if not self._done.is_set():
            return "pending"
        return "ready" if self._error is None else f"failed: {self._error}"

    def result(self, timeout: float | None = None) -> list[tuple[str, torch.Tensor]]:
        """The staged tensors (waits for the reader); raises StagingError when staging failed."""
        if not self._done.wait(timeout):
            raise StagingError(f"{self.path}: still staging after {timeout} s")
        if self._error is not None or self._tensors is None:
            raise StagingError(self._error or "nothing staged")
        return self._tensors


def check_loaded(parameters: dict[str, torch.Tensor], staged: list[tuple[str, torch.Tensor]]) -> int:
    """Compare the engine's parameters with the staged tensors of the same name and shape; returns
    how many matched and raises StagingError on the first that differs: the weights did not load.
    Give only parameters the engine keeps as the checkpoint has them (embeddings, norms): fused or
    repacked linear weights have another layout."""
    checked = 0
    for name, tensor in staged:
        param = parameters.get(name)
        if param is None or param.dim() != tensor.dim() or param.shape[1:] != tensor.shape[1:]:
            continue
        rows = tensor.shape[0] if tensor.dim() else None
        if rows is not None and param.shape[0] < rows:
            continue
        loaded = param[:rows] if rows is not None else param  # a padded vocabulary has extra rows
        # The loader casts the checkpoint to the engine's dtype; so does this comparison.
        if not torch.equal(loaded.detach().cpu(), tensor.to(param.dtype)):
            raise StagingError(f"the engine's {name} is not the staged tensor after the reload")
        checked += 1
    return checked
