"""Guard cost per check of one window at growing forget-set sizes: latency, memory, build time, ANN recall.

    python benchmarks/bench_guard.py --sizes 1000,100000 [--queries 200] [--json out.json] [--embedders onnx,torch,onnx:2]

Items are synthetic forget entries of one fact sentence, one literal and its verbatim shingles. At the
smallest size every sentence is embedded by the real all-MiniLM-L6-v2; larger sizes reuse those embeddings
plus Gaussian noise (re-normalised), which keeps the clustered geometry of real sentence embeddings
without embedding a million sentences. Query windows are real sentences embedded by the real model.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.guard import CachedEmbedder, ForgetIndex, GuardSettings, MiniLMEmbedder
from gateway.guard.artifacts import (
    ARTIFACTS_FORMAT,
    EntryArtifacts,
    hashed_keys,
    shingle_prefixes,
    shingles,
)
from gateway.guard.keyed import PROCESS_HASHER
from gateway.guard.text import words
from gateway.guard.views import canonical

FIRST = ["Ingrid", "Sindre", "Marit", "Eirik", "Solveig", "Haakon", "Liv", "Tormod", "Ragnhild", "Audun", "Oda"]
CITIES = ["Tromsø", "Bergen", "Trondheim", "Lyon", "Porto", "Graz", "Utrecht", "Tampere", "Aarhus", "Cork"]
JOBS = ["marine biologist", "structural engineer", "nurse", "jazz pianist", "accountant", "ferry captain"]
QUERIES = [
    "The Pacific is the largest ocean on Earth.",
    "Water boils at 100 degrees Celsius at sea level.",
    "Copper is an excellent conductor of electricity.",
    "Many birds migrate south before the winter begins.",
    "The Eiffel Tower was completed in 1889 for the World's Fair.",
]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def tag(i: int) -> str:
    """`i` in letters ("b", "ba", ...): names made unique without digits, which a leet reading would turn
    into a second window to embed (a real name has none; disguised text is bench_guard_views.py's)."""
    out = ""
    while True:
        i, r = divmod(i, 26)
        out = "abcdefghijklmnopqrstuvwxyz"[r] + out
        if not i:
            return out


def fact(i: int, rng: random.Random) -> str:
    return (
        f"{rng.choice(FIRST)} Person{tag(i)} was born in {rng.choice(CITIES)} in {1950 + i % 50} "
        f"and works as a {rng.choice(JOBS)}."
    )


def synthetic_artifacts(n: int, base_texts: list[str], base: np.ndarray, model: str, seed: int = 0):
    """One entry without a subject per item: its fact sentence (a unique name), one phone literal, the
    sentence's shingles and their prefixes, all keyed with the process's hasher as the index expects."""
    hasher = PROCESS_HASHER
    born = hasher("born")
    rng = np.random.default_rng(seed)
    dim = base.shape[1]
    out = []
    chunk = 50_000
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        if n <= len(base):
            vecs = base[lo:hi]
        else:
            vecs = base[np.arange(lo, hi) % len(base)] + rng.standard_normal((hi - lo, dim)).astype(np.float32) * 0.03
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        vecs = vecs.astype(np.float32)
        for j, i in enumerate(range(lo, hi)):
            text = base_texts[i % len(base_texts)].replace("Person", f"P{tag(i)}x")
            tokens = [w.text for w in words(canonical(text))]  # the second is the item's unique surname
            out.append(
                EntryArtifacts(
                    forget_id=f"item-{i}",
                    action="block",
                    model_name=model,
                    dim=dim,
                    ngram_n=5,
                    key_id=hasher.key_id,
                    literal_keys=hashed_keys([("digits", f"47{90000000 + i}")], hasher),
                    ngram_hashes=np.array(sorted(set(shingles(tokens, 5, hasher))), dtype="<u8").tobytes(),
                    output_vectors=vecs[j].tobytes(),
                    output_anchors=((hasher(tokens[1]), born),),
                    question_vectors=b"",
                    subject_terms=(),
                    full_name=(),
                    attribute_terms=(),
                    format=ARTIFACTS_FORMAT,
                    ngram_prefixes=np.array(sorted(shingle_prefixes(tokens, 5, hasher)), dtype="<u8").tobytes(),
                )
            )
    return out


def percentile(values, q):
    return float(np.percentile(np.array(values) * 1000, q))


def bench_size(n: int, base_texts, base, embedder, inners: dict, queries: list[str], settings: GuardSettings) -> dict:
    import faiss

    arts = synthetic_artifacts(n, base_texts, base, embedder.name)
    rss0 = rss_mb()
    t0 = time.perf_counter()
    index = ForgetIndex.empty(embedder, settings).with_entries(arts, version=1)
    build_s = time.perf_counter() - t0
    del arts
    rss1 = rss_mb()
    semantic = next(m for m in index.matchers if m.kind == "semantic")
    kinds = [s.kind for s in semantic.store.segments]

    # Per window: the whole check, with the window's embedding computed (cold) and cached (warm).
    # One OpenMP thread for queries: a single-window search gains nothing from more, and spinning
    # threads on shared cores cost tens of milliseconds.
    faiss.omp_set_num_threads(1)
    # Wall time suffers from whatever else runs on the cores; the thread's CPU time does not.
    # Each embedder backend checks every query in turn (interleaved, so both see the same load).
    cold = {name: [] for name in inners}
    cold_cpu = {name: [] for name in inners}
    # An embedder on several threads spends CPU outside the calling thread: count the whole process too.
    cold_proc = {name: [] for name in inners}
    embed_only = {name: [] for name in inners}
    warm, warm_cpu, search_only = [], [], []
    for q in queries:
        if len(index.windows(q)) != 1:
            raise ValueError(f"query {q!r} is not one window")
        for name, inner in inners.items():
            uncached = copy.copy(index)  # every field kept (anchors, hasher, ...), only the embedder differs
            uncached.embedder = inner
            t, c, p = time.perf_counter(), time.thread_time(), time.process_time()
            uncached.check_output(q)
            cold[name].append(time.perf_counter() - t)
            cold_cpu[name].append(time.thread_time() - c)
            cold_proc[name].append(time.process_time() - p)
            t = time.perf_counter()
            inner.encode([q])
            embed_only[name].append(time.perf_counter() - t)
        embedder.encode([q])
        t, c = time.perf_counter(), time.thread_time()
        index.check_output(q)
        warm.append(time.perf_counter() - t)
        warm_cpu.append(time.thread_time() - c)
    qvec = embedder.encode(queries)
    for v in qvec:
        t = time.perf_counter()
        semantic.store.search(v[None, :], settings.semantic_top_k)
        search_only.append(time.perf_counter() - t)

    # Recall of the approximate index against exact search: real query windows, and near-duplicate queries
    # (a stored row plus noise, cosine ~0.9: what a leak looks like).
    recall = {}
    if "hnsw" in kinds:
        seg = semantic.store.segments[0]
        stored = seg.vectors()
        rng = np.random.default_rng(1)
        near = (
            stored[rng.integers(0, len(stored), 200)]
            + rng.standard_normal((200, stored.shape[1])).astype(np.float32) * 0.02
        )
        near /= np.linalg.norm(near, axis=1, keepdims=True)
        exact = faiss.IndexFlatIP(stored.shape[1])
        exact.add(stored)
        for name, qs in (("windows", qvec), ("near_duplicates", near.astype(np.float32))):
            _, truth = exact.search(qs, 10)
            _, approx = seg.index.search(qs, 10)
            r10 = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(approx, truth)])
            r1 = np.mean([a[0] == b[0] for a, b in zip(approx, truth)])
            recall[name] = {"recall@1": round(float(r1), 4), "recall@10": round(float(r10), 4)}
        del stored, exact
    first = next(iter(inners))
    by_embedder = {
        name: {
            "check_cold_p50_ms": round(percentile(cold[name], 50), 2),
            "check_cold_p99_ms": round(percentile(cold[name], 99), 2),
            "cpu_cold_p50_ms": round(percentile(cold_cpu[name], 50), 2),
            "cpu_cold_p99_ms": round(percentile(cold_cpu[name], 99), 2),
            "process_cpu_cold_p50_ms": round(percentile(cold_proc[name], 50), 2),
            "process_cpu_cold_p99_ms": round(percentile(cold_proc[name], 99), 2),
            "embed_p50_ms": round(percentile(embed_only[name], 50), 2),
            "embed_p99_ms": round(percentile(embed_only[name], 99), 2),
        }
        for name in inners
    }
    return {
        "items": n,
        "segments": kinds,
        "build_s": round(build_s, 2),
        "index_rss_mb": round(rss1 - rss0, 1),
        "embedder": first,
        **{k: v for k, v in by_embedder[first].items() if not k.startswith(("embed_", "process_"))},
        "check_warm_p50_ms": round(percentile(warm, 50), 2),
        "check_warm_p99_ms": round(percentile(warm, 99), 2),
        "cpu_warm_p50_ms": round(percentile(warm_cpu, 50), 2),
        "cpu_warm_p99_ms": round(percentile(warm_cpu, 99), 2),
        "faiss_p50_ms": round(percentile(search_only, 50), 3),
        "faiss_p99_ms": round(percentile(search_only, 99), 3),
        "ann_recall": recall,
        "by_embedder": by_embedder,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2, help="threads for index builds")
    parser.add_argument("--base", type=int, default=2000, help="sentences embedded for real")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--embedders",
        default="onnx,torch",
        help="embedder backends to time per check, side by side (the first builds the index); "
        "BACKEND:N runs one on N threads (default 1, the serving setting)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    import faiss
    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)
    # The serving configuration: one thread per replica.
    inners = {}
    for spec in args.embedders.split(","):
        backend, _, threads = spec.partition(":")
        inners[spec] = MiniLMEmbedder(threads=int(threads or 1), backend=backend)
    inner = next(iter(inners.values()))
    embedder = CachedEmbedder(inner, max_items=10_000)
    for each in inners.values():
        each.encode(["warm up"])  # load the model (and export the ONNX graph once) before timing anything
    rng = random.Random(0)
    n_base = min(args.base, max(sizes))
    base_texts = [fact(i, rng) for i in range(n_base)]
    t = time.perf_counter()
    base = inner.encode(base_texts)
    print(f"embedded {n_base} base sentences in {time.perf_counter() - t:.1f}s", flush=True)
    # One window each: half leak-like facts, half benign sentences.
    query_texts = [
        fact(i, rng) if i % 2 else f"{QUERIES[i % len(QUERIES)][:-1]}, says note {i}." for i in range(args.queries)
    ]
    settings = GuardSettings()
    results = []
    for n in sizes:
        faiss.omp_set_num_threads(args.threads)  # builds use every core
        r = bench_size(n, base_texts, base, embedder, inners, query_texts, settings)
        results.append(r)
        print(json.dumps(r), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
