"""Leakage probe run duration on the live gateway: N forget requests, one probe run of the raw model.

    .venv/bin/python benchmarks/bench_probes.py [--model DIR] [--items 100] [--qa-per-item 1]

Files `--items` fictitious people as forget requests (each with `--qa-per-item` QA pairs and its
phone number), then times `POST /v1/admin/leakage/run` (forget prompts + the 26 neutral retain
questions, greedy, 48 tokens, 8 in flight) twice: the first run on the base version also records
the retain reference. Output: markdown on stdout and in benchmarks/results/probes.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from bench_forget import TOKEN, enforce, people  # noqa: E402
from reporting import publish_report  # noqa: E402

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(Path.home() / ".lethe/models/smollm2-135m-instruct"))
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--qa-per-item", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/probes.md"))
    args = parser.parse_args()

    from tests.support.lethe_server import LetheServer

    bodies = [{**b, "qa": b["qa"][: args.qa_per_item]} for b in people(args.items)]
    home = Path(tempfile.mkdtemp(prefix="lethe-bench-probes-"))
    server = LetheServer(home, {"LETHE_MODEL": args.model, "LETHE_ADMIN_TOKEN": TOKEN}, home / "serve.log").start()
    runs = []
    try:
        enforce(server.base_url, bodies)
        with httpx.Client(base_url=server.base_url, timeout=3600, headers=AUTH) as http:
            for _ in range(2):
                start = time.perf_counter()
                resp = http.post("/v1/admin/leakage/run")
                resp.raise_for_status()
                runs.append((time.perf_counter() - start, resp.json()))
    finally:
        server.stop()
        server.kill_leftovers()

    lines = [
        "## Leakage probe run",
        "",
        f"Model `{Path(args.model).name}`, one LLM replica, {args.items} forget requests × {args.qa_per_item} QA, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end.",
        "",
    ]
    for n, (seconds, report) in enumerate(runs, start=1):
        row = next(iter(report["by_version"].values()))
        lines.append(
            f"- Run {n}: {seconds:.1f} s over HTTP ({report['duration_s']:.1f} s in the prober) for "
            f"{report['forget_prompts']} forget prompts + the retain questions "
            f"({report['forget_prompts'] / seconds:.1f} forget prompts/s overall); leakage ratio "
            f"{row['leakage_ratio']:.2f}, retain score {row['retain_score']}; retain source: {report['retain_source']}."
        )
    text = "\n".join(lines)
    publish_report(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
