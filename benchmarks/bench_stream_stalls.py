"""Streaming as a chat user sees it, with an empty forget index and with many requests filed.

    .venv/bin/python benchmarks/bench_stream_stalls.py [--entries 1000] [--model DIR] [--max-tokens 96]

One `lethe serve` (2 ingress replicas). The official `openai` client streams everyday prompts that
mention nothing forgotten, one at a time, and records the time to the first content chunk and the longest
pause between two chunks. Then `--entries` fictitious people are filed (QA pairs, phone literals) and the
same prompts run again; last, prompts that ask about a forgotten person (those may hold back by design:
reported apart). Ratios filed/empty are the issue-16 figures (targets: first token <= 1.3x, longest
gap <= 2x).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_forget import people  # noqa: E402
from reporting import publish_report  # noqa: E402

TOKEN = "bench-token"
UNRELATED = [
    "Write a short paragraph about the history of bread.",
    "Explain how a bicycle gear works.",
    "Describe a walk along a rocky beach in autumn.",
    "What are three tips for keeping houseplants healthy?",
    "Tell me about the water cycle.",
    "Write a few sentences about learning to play the piano.",
]


def stream_once(client, model: str, prompt: str, max_tokens: int) -> tuple[float, float, int]:
    """(seconds to the first content chunk, longest gap between content chunks, chunks)."""
    start = time.perf_counter()
    times = []
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0, stream=True
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            times.append(time.perf_counter())
    if not times:
        return float("nan"), float("nan"), 0
    gaps = [b - a for a, b in itertools.pairwise(times)] or [0.0]
    return times[0] - start, max(gaps), len(times)


def run(client, model: str, prompts: list[str], max_tokens: int, rounds: int) -> dict[str, float]:
    ttft, gap = [], []
    for _ in range(rounds):
        for prompt in prompts:
            first, longest, _ = stream_once(client, model, prompt, max_tokens)
            ttft.append(first)
            gap.append(longest)
    return {
        "ttft_p50_ms": 1000 * statistics.median(ttft),
        "ttft_max_ms": 1000 * max(ttft),
        "gap_p50_ms": 1000 * statistics.median(gap),
        "gap_max_ms": 1000 * max(gap),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(Path.home() / ".lethe/models/smollm2-135m-instruct"))
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/stream_stalls.md"))
    args = parser.parse_args()

    from openai import OpenAI

    from tests.support.lethe_server import LetheServer

    home = Path(tempfile.mkdtemp(prefix="lethe-bench-stalls-"))
    env = {"LETHE_MODEL": args.model, "LETHE_INGRESS_REPLICAS": "2", "LETHE_ADMIN_TOKEN": TOKEN}
    server = LetheServer(home, env, home / "serve.log").start()
    model = Path(args.model).name
    bodies = people(args.entries)
    try:
        client = OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=300)
        stream_once(client, model, "Warm up.", 8)
        empty = run(client, model, UNRELATED, args.max_tokens, args.rounds)
        print(f"empty index: {empty}", file=sys.stderr)
        started = time.perf_counter()
        with httpx.Client(base_url=server.base_url, timeout=120, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            for body in bodies:
                http.post("/v1/forget", json=body).raise_for_status()
        filing_s = time.perf_counter() - started
        filed = run(client, model, UNRELATED, args.max_tokens, args.rounds)
        print(f"{args.entries} filed: {filed}", file=sys.stderr)
        about = [f"Tell me about {b['subject']}." for b in bodies[:6]]
        forgotten = run(client, model, about, args.max_tokens, 1)
    finally:
        server.stop()
        server.kill_leftovers()

    def row(label: str, key: str) -> str:
        return (
            f"| {label} | {empty[key]:.0f} | {filed[key]:.0f} | {filed[key] / empty[key]:.2f}x | {forgotten[key]:.0f} |"
        )

    report = "\n".join(
        [
            f"## Streaming with {args.entries} forget requests filed vs an empty index",
            "",
            f"`{model}`, 2 ingress replicas, the `openai` client streaming {len(UNRELATED)} unrelated prompts "
            f"x {args.rounds} rounds, {args.max_tokens} tokens, one at a time ({args.entries} requests filed in "
            f"{filing_s:.0f} s between the two phases). Last column: prompts about a forgotten person.",
            "",
            f"| measure | empty index | {args.entries} filed | ratio | about a forgotten person |",
            "|---|---:|---:|---:|---:|",
            row("time to first token, median (ms)", "ttft_p50_ms"),
            row("time to first token, worst (ms)", "ttft_max_ms"),
            row("longest gap between chunks, median of streams (ms)", "gap_p50_ms"),
            row("longest gap between chunks, worst (ms)", "gap_max_ms"),
        ]
    )
    publish_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
