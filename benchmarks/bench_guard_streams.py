"""Streaming guard cost and hold-back on unrelated text: this tree against a baseline revision, side by side.

    .venv/bin/python benchmarks/bench_guard_streams.py [--baseline fe1aec1] [--rounds 3] [--json out.json]

Issue 16's setting: 8 forget requests filed (the first 8 people of tests/gateway/guard/data/forget_set.json),
responses about other things (the `general` and `long_benign` clean probes: everyday text naming none of
them). The baseline's `gateway/` is exported with `git archive`; each round runs one worker process per tree,
alternately. A worker streams every response through `StreamGuard` in 4-character deltas, one thread, the real
embedder (all-MiniLM-L6-v2, ONNX or torch as installed, one thread), and reports:
- guard CPU per streamed sentence (thread CPU of all `feed`/`finish` calls of a response / its units; median
  and p99 over responses; each round's texts carry a suffix of their own, so no window is in a warm cache);
- characters the model had written when the client got its first one, and the longest run of characters
  written while nothing was released (the bursts a user sees);
- windows checked per CPU second, with 8 and with 32 streams open at once (deltas fed round-robin, the way
  one ingress replica interleaves its streams).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reporting import publish_report

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from gateway.guard import CachedEmbedder, ForgetEntry, ForgetIndex, MiniLMEmbedder, StreamGuard
from gateway.guard.artifacts import build_many_artifacts
data = json.loads(open(sys.argv[2]).read())
entries = [ForgetEntry(e["forget_id"], e["subject"], tuple(e["texts"]), tuple(tuple(q) for q in e["qa"]),
                       tuple(e["literals"]), e["action"], e["reason"]) for e in data["entries"]]
embedder = CachedEmbedder(MiniLMEmbedder(threads=1), max_items=100_000)
index = ForgetIndex.empty(embedder).with_entries(build_many_artifacts(entries, embedder), 1)
index.check_output("Warm up the encoder and every matcher once.")

def stream(text):
    guard = StreamGuard(index)
    cpu, first, gap, since = 0.0, None, 0, 0
    for i in range(0, len(text), 4):
        t0 = time.thread_time(); step = guard.feed(text[i : i + 4]); cpu += time.thread_time() - t0
        since += len(text[i : i + 4])
        if step.release:
            first = min(i + 4, len(text)) if first is None else first
            gap, since = max(gap, since), 0
        if step.stopped:
            break
    else:
        t0 = time.thread_time(); guard.finish(); cpu += time.thread_time() - t0
    return cpu, (first if first is not None else len(text)), max(gap, since)

per_sentence, firsts, gaps = [], [], []
for text in data["texts"]:
    cpu, first, gap = stream(text)
    units = max(1, len(index.windows(text)) // 2 + 1)
    per_sentence.append(1000 * cpu / units); firsts.append(first); gaps.append(gap)

def concurrent(n, texts):
    guards = [StreamGuard(index) for _ in range(n)]
    todo = [texts[i % len(texts)] + " Stream " + "".join(chr(97 + (i * 7 + k) % 26) for k in range(5)) + "."
            for i in range(n)]
    windows = sum(len(index.windows(t)) for t in todo)
    t0 = time.thread_time()
    pos = 0
    while any(pos < len(t) for t in todo):
        for g, t in zip(guards, todo):
            if pos < len(t):
                g.feed(t[pos : pos + 4])
        pos += 4
    for g in guards:
        g.finish()
    return windows / (time.thread_time() - t0)

rates = {str(n): concurrent(n, data["concurrent_texts"]) for n in (8, 32)}
per_sentence.sort()
print(json.dumps({"per_sentence_ms": per_sentence, "first_release_chars": firsts, "longest_hold_chars": gaps,
                  "windows_per_cpu_s": rates}))
"""


def export(revision: str, into: Path) -> Path:
    archive = into / "baseline.tar"
    subprocess.run(["git", "archive", "-o", str(archive), revision, "gateway"], cwd=ROOT, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "tree", filter="data")
    return into / "tree"


ROUND_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett")


def payload(round_no: int) -> dict:
    """8 forget entries; unrelated responses with a suffix of their own per round (no warm cache), in words:
    a number would be an anchor (gateway.guard.anchors) that everyday text does not have."""
    data_dir = ROOT / "tests" / "gateway" / "guard" / "data"
    entries = json.loads((data_dir / "forget_set.json").read_text())[:8]
    texts = []
    for name in ("cleans_dev", "cleans_test"):
        probes = json.loads((data_dir / f"{name}.json").read_text())
        word = ROUND_WORDS[round_no % len(ROUND_WORDS)]
        texts += [f"{p['text']} (Round {word}.)" for p in probes if p["category"] in ("general", "long_benign")]
    again = [f"{t} Again in round {ROUND_WORDS[round_no % len(ROUND_WORDS)]}." for t in texts]
    return {"entries": entries, "texts": texts, "concurrent_texts": again}


def run_worker(tree: Path, data_file: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", WORKER, str(tree), str(data_file)], env=env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="fe1aec1", help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "guard_streams.md")
    args = parser.parse_args()
    results: dict[str, list[dict]] = {"baseline": [], "current": []}
    with tempfile.TemporaryDirectory() as tmp:
        baseline = export(args.baseline, Path(tmp))
        for round_no in range(args.rounds):
            data_file = Path(tmp) / f"round{round_no}.json"
            data_file.write_text(json.dumps(payload(round_no)))
            order = [("baseline", baseline), ("current", ROOT)]
            for name, tree in order if round_no % 2 == 0 else reversed(order):
                results[name].append(run_worker(tree, data_file))
                r = results[name][-1]
                print(
                    f"round {round_no} {name}: sentence p50 {statistics.median(r['per_sentence_ms']):.2f} ms, "
                    f"windows/s {r['windows_per_cpu_s']}",
                    file=sys.stderr,
                    flush=True,
                )

    def pooled(name: str, key: str) -> list[float]:
        return [v for r in results[name] for v in r[key]]

    def rate(name: str, n: str) -> float:
        return statistics.median(r["windows_per_cpu_s"][n] for r in results[name])

    measures = [
        ("guard CPU per streamed sentence, median (ms)", lambda n: statistics.median(pooled(n, "per_sentence_ms"))),
        ("guard CPU per streamed sentence, p99 (ms)", lambda n: pct(pooled(n, "per_sentence_ms"), 0.99)),
        (
            "characters written before the first is released, median",
            lambda n: statistics.median(pooled(n, "first_release_chars")),
        ),
        (
            "longest run written with nothing released, median (chars)",
            lambda n: statistics.median(pooled(n, "longest_hold_chars")),
        ),
        ("windows checked per CPU second, 8 streams", lambda n: rate(n, "8")),
        ("windows checked per CPU second, 32 streams", lambda n: rate(n, "32")),
    ]
    rows = []
    summary = {}
    for label, metric in measures:
        base, cur = metric("baseline"), metric("current")
        rows.append(f"| {label} | {base:.2f} | {cur:.2f} | {cur / base:.2f}x |")
        summary[label] = {"baseline": round(base, 3), "current": round(cur, 3)}
    texts = len(payload(0)["texts"])
    report = "\n".join(
        [
            f"## Streaming guard on unrelated text: this tree vs {args.baseline}",
            "",
            f"{args.rounds} rounds, alternating order, one worker process per tree and round; {texts} responses "
            "per round streamed in 4-character deltas; 8 forget entries; all-MiniLM-L6-v2, one thread.",
            "",
            f"| measure | {args.baseline} | this tree | ratio |",
            "|---|---:|---:|---:|",
            *rows,
        ]
    )
    publish_report(report, args.out)
    if args.json:
        args.json.write_text(json.dumps({"baseline": args.baseline, "summary": summary, "runs": results}, indent=2))


if __name__ == "__main__":
    main()
