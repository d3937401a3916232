"""Inner-product search over forgotten rows in FAISS: exact flat segments while small, HNSW once large."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from gateway.guard.settings import GuardSettings

M = TypeVar("M")


@dataclass(frozen=True)
class VectorSegment(Generic[M]):
    """One FAISS index over some rows, with one payload per row. Never mutated once built."""

    index: Any  # faiss.Index; only searched after construction, so sharing it between snapshots is safe
    meta: tuple[M, ...]
    kind: str  # "flat" | "hnsw"
    sealed: bool  # a sealed segment is never rebuilt by later additions

    def __len__(self) -> int:
        return len(self.meta)

    def vectors(self) -> np.ndarray:
        rows: np.ndarray = self.index.reconstruct_n(0, self.index.ntotal)
        return rows


def build_segment(vectors: np.ndarray, meta: tuple[M, ...], settings: GuardSettings, sealed: bool) -> VectorSegment[M]:
    """An exact IndexFlatIP below settings.flat_max rows, HNSW (inner product) from there on."""
    import faiss

    if vectors.ndim != 2 or vectors.shape[0] != len(meta):
        raise ValueError("need one payload per vector row")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    if len(meta) >= settings.flat_max:
        hnsw = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = settings.hnsw_ef_construction
        hnsw.add(vectors)
        hnsw.hnsw.efSearch = settings.hnsw_ef_search
        return VectorSegment(index=hnsw, meta=meta, kind="hnsw", sealed=sealed)
    flat = faiss.IndexFlatIP(dim)
    flat.add(vectors)
    return VectorSegment(index=flat, meta=meta, kind="flat", sealed=sealed)


class VectorStore(Generic[M]):
    """Immutable set of segments. Adding rows returns a new store that shares every sealed segment.

    Rows added in small batches collect in one flat tail segment (rebuilt on each addition, so an addition
    costs O(tail)); at settings.tail_max rows the tail is sealed and a new one starts. `compacted()` merges
    everything into one segment of the right kind; it is the expensive step (HNSW build) and is meant to
    run off the request path.

    >>> store = VectorStore(384, GuardSettings()).with_rows(np.eye(2, 384, dtype=np.float32), ["a", "b"])
    >>> store.search(np.eye(1, 384, dtype=np.float32), k=1)[0][0][1]
    'a'
    """

    def __init__(self, dim: int, settings: GuardSettings, segments: tuple[VectorSegment[M], ...] = ()) -> None:
        self.dim = dim
        self.settings = settings
        self.segments = segments

    def __len__(self) -> int:
        return sum(len(s) for s in self.segments)

    def with_rows(self, vectors: np.ndarray, meta: Sequence[M]) -> VectorStore[M]:
        vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if vectors.shape[0] != len(meta):
            raise ValueError("need one payload per vector row")
        if not len(meta):
            return self
        segments = list(self.segments)
        meta = tuple(meta)
        if segments and not segments[-1].sealed:
            tail = segments.pop()
            vectors = np.concatenate([tail.vectors(), vectors])
            meta = tail.meta + meta
        segments.append(build_segment(vectors, meta, self.settings, sealed=len(meta) >= self.settings.tail_max))
        return VectorStore(self.dim, self.settings, tuple(segments))

    def compacted(self) -> VectorStore[M]:
        if len(self.segments) <= 1:
            return self
        vectors = np.concatenate([s.vectors() for s in self.segments])
        meta = tuple(m for s in self.segments for m in s.meta)
        segment = build_segment(vectors, meta, self.settings, sealed=True)
        return VectorStore(self.dim, self.settings, (segment,))

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[float, M]]]:
        """Top-k (score, payload) per query over all segments, best first."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        results: list[list[tuple[float, M]]] = [[] for _ in range(len(queries))]
        if not len(queries):
            return results
        for segment in self.segments:
            kk = min(k, len(segment))
            scores, ids = segment.index.search(queries, kk)
            for qi in range(len(queries)):
                row = results[qi]
                for score, idx in zip(scores[qi], ids[qi]):
                    if idx >= 0:
                        row.append((float(score), segment.meta[idx]))
        if len(self.segments) > 1:
            results = [sorted(r, key=lambda x: -x[0])[:k] for r in results]
        return results
