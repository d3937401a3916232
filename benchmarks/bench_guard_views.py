"""Guard CPU per window: this tree against a baseline revision, side by side in one run.

    python benchmarks/bench_guard_views.py [--baseline 8df2eec] [--rounds 3] [--json out.json]

The baseline's `gateway/` is exported with `git archive` into a temporary folder; each round runs one worker
process per tree, alternately, on the same machine state. A worker builds the forget index of the probe forget
set (30 people: texts, QA, literals) with the real embedder (one thread) and checks ordinary text: the clean
and leak probe sentences of tests/gateway/guard/data (never seen by the embedder cache, so every window is
embedded: the cost a new response pays), as whole outputs (`check_output`) and streamed in 4-character deltas
(`StreamGuard`). It reports thread CPU per window and per streamed character, and how much of each stream the
model had written when the client got its first character (what the hold-back adds to the time to first
token). The ratio current/baseline of CPU per window is the figure the guard v2 issue bounds (<= 1.25).
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
texts = data["texts"]
windows = sum(len(index.windows(t)) for t in texts)
start = time.thread_time()
for t in texts:
    index.check_output(t)
whole = time.thread_time() - start
text_chars = sum(len(t) for t in texts)
start = time.thread_time()
for t in texts:  # the whole-text matchers alone (literals in every view, verbatim shingles): no encoder
    index.find(t, index.windows(t), windowed=False)
lexical = time.thread_time() - start
stream_texts = data["stream_texts"]
chars = sum(len(t) for t in stream_texts)
first = []  # characters the model had written when the client got its first one
start = time.thread_time()
for t in stream_texts:
    guard = StreamGuard(index)
    seen = None
    for i in range(0, len(t), 4):
        step = guard.feed(t[i : i + 4])
        if seen is None and step.release:
            seen = min(i + 4, len(t))
        if step.stopped:
            break
    else:
        guard.finish()
    first.append(seen if seen is not None else len(t))
stream = time.thread_time() - start
print(json.dumps({"windows": windows, "whole_s": whole, "chars": chars, "stream_s": stream,
                  "text_chars": text_chars, "lexical_s": lexical,
                  "first_release_chars": sum(first) / len(first)}))
"""


def export(revision: str, into: Path) -> Path:
    archive = into / "baseline.tar"
    subprocess.run(["git", "archive", "-o", str(archive), revision, "gateway"], cwd=ROOT, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "tree", filter="data")
    return into / "tree"


def payload(round_no: int) -> dict:
    """Forget set and texts; each round gets its own texts (a suffix) so no window is in a warm cache."""
    data_dir = ROOT / "tests" / "gateway" / "guard" / "data"
    entries = json.loads((data_dir / "forget_set.json").read_text())
    texts = []
    for name in ("cleans_dev", "cleans_test", "leaks_dev", "leaks_test"):
        texts += [f"{p['text']} (round {round_no})" for p in json.loads((data_dir / f"{name}.json").read_text())]
    stream = [" ".join(texts[i : i + 6]) for i in range(0, 120, 6)]
    return {"entries": entries, "texts": texts, "stream_texts": stream}


def run_worker(tree: Path, data_file: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", WORKER, str(tree), str(data_file)], env=env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="8df2eec", help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
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
                print(f"round {round_no} {name}: {results[name][-1]}", flush=True)

    def per_window_ms(r: dict) -> float:
        return 1000 * r["whole_s"] / r["windows"]

    def per_kchar_ms(r: dict) -> float:
        return 1000 * r["stream_s"] / r["chars"] * 1000

    def lexical_kchar_ms(r: dict) -> float:
        return 1000 * r["lexical_s"] / r["text_chars"] * 1000

    rows = []
    summary = {}
    first_base = statistics.median(r["first_release_chars"] for r in results["baseline"])
    first_cur = statistics.median(r["first_release_chars"] for r in results["current"])
    rows.append(
        f"| characters written before the first one is released (mean of streams) | {first_base:.0f} | "
        f"{first_cur:.0f} | {first_cur / first_base:.2f}x |"
    )
    summary["first_release_chars"] = {"baseline": first_base, "current": first_cur}
    for label, metric in (
        ("CPU per window, whole output (ms)", per_window_ms),
        ("CPU per 1,000 streamed characters (ms)", per_kchar_ms),
        ("CPU per 1,000 characters, literal + verbatim matchers only (ms)", lexical_kchar_ms),
    ):
        base = statistics.median(metric(r) for r in results["baseline"])
        cur = statistics.median(metric(r) for r in results["current"])
        rows.append(f"| {label} | {base:.2f} | {cur:.2f} | {cur / base:.2f}x |")
        summary[label] = {"baseline": round(base, 3), "current": round(cur, 3), "ratio": round(cur / base, 3)}
    report = "\n".join(
        [
            f"## Guard CPU per window: this tree vs {args.baseline}",
            "",
            f"{args.rounds} rounds, alternating order, one worker process per tree and round; median of rounds. "
            f"{results['current'][0]['windows']} windows of {len(payload(0)['texts'])} texts per round; "
            "30 forget entries; all-MiniLM-L6-v2, one thread.",
            "",
            f"| measure | {args.baseline} | this tree | ratio |",
            "|---|---:|---:|---:|",
            *rows,
        ]
    )
    publish_report(report, ROOT / "benchmarks" / "results" / "guard_views.md")
    if args.json:
        args.json.write_text(json.dumps({"baseline": args.baseline, "summary": summary, "runs": results}, indent=2))


if __name__ == "__main__":
    main()
