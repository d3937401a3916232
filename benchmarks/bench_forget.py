"""Forget enforcement on the live gateway: time to enforce (POST /v1/forget to its return, two
ingress replicas) and chat throughput with the guard on vs off, side by side in one run.

    .venv/bin/python benchmarks/bench_forget.py [--model DIR] [--entries 200] [--rounds 2]

Rounds alternate guard-on and guard-off servers (same model, same replicas) so machine drift
hits both. With the guard on, the index holds `--entries` fictitious people (texts, QA pairs,
literals) while the chat load runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_gateway import GatewayClient, pct, prompts, run_concurrent  # noqa: E402
from reporting import publish_report  # noqa: E402

TOKEN = "bench-token"


def people(n: int) -> list[dict]:
    """Forget bodies for `n` fictitious people: their QA pairs, and their phone numbers as literals."""
    from unlearn_jobs.facts import generate_fact_set

    bodies: list[dict] = []
    # One generated set has at most ~200 people with unique towns; larger counts come from several sets
    # (another seed each), so a few names or towns may repeat across them, as they do in real data.
    seed = 11
    while len(bodies) < n:
        for raw in generate_fact_set(min(200, n - len(bodies)), seed=seed).forget_requests():
            digits = [t for t in raw["literals"] if sum(c.isdigit() for c in t) >= 6]
            bodies.append({"subject": raw["subject"], "qa": raw["qa"], "literals": digits, "reason": "gdpr"})
        seed += 1
    return bodies


def enforce(base_url: str, bodies: list[dict]) -> list[float]:
    latencies = []
    with httpx.Client(base_url=base_url, timeout=120, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        for body in bodies:
            start = time.perf_counter()
            resp = http.post("/v1/forget", json=body)
            latencies.append(time.perf_counter() - start)
            resp.raise_for_status()
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(Path.home() / ".lethe/models/smollm2-135m-instruct"))
    parser.add_argument("--entries", type=int, default=200)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/forget.md"))
    parser.add_argument("--enforce-only", action="store_true", help="time to enforce only (no throughput phase)")
    args = parser.parse_args()

    from tests.support.lethe_server import LetheServer

    bodies = people(args.entries)
    tps: dict[str, list[float]] = {"on": [], "off": []}
    enforce_s: list[float] = []
    for rnd in range(args.rounds):
        for mode in ("on",) if args.enforce_only else ("on", "off"):
            home = Path(tempfile.mkdtemp(prefix=f"lethe-bench-guard-{mode}-"))
            env = {
                "LETHE_MODEL": args.model,
                "LETHE_INGRESS_REPLICAS": "2",
                "LETHE_ADMIN_TOKEN": TOKEN,
                "LETHE_GUARD_ENABLED": "true" if mode == "on" else "false",
            }
            server = LetheServer(home, env, home / "serve.log").start()
            try:
                latencies = enforce(server.base_url, bodies)
                if mode == "on":
                    enforce_s += latencies
                if args.enforce_only:
                    continue
                client = GatewayClient(server.base_url, Path(args.model).name, args.max_tokens)

                async def load():
                    await client("Warm up.")
                    return await run_concurrent(client, prompts(args.requests), 8)

                tps[mode].append(asyncio.run(load()).tokens_per_s)
            finally:
                server.stop()
                server.kill_leftovers()
            if not args.enforce_only:
                print(f"round {rnd + 1} guard {mode}: {tps[mode][-1]:.1f} tok/s", file=sys.stderr)

    ms = [s * 1000 for s in enforce_s]
    if args.enforce_only:
        publish_report(
            f"time to enforce (POST /v1/forget -> 201, 2 ingress replicas, {len(ms)} requests, index growing to "
            f"{args.entries} people): p50 {pct(ms, 0.5):.0f} ms, p99 {pct(ms, 0.99):.0f} ms, max {max(ms):.0f} ms",
            args.out,
        )
        return 0
    on, off = statistics.median(tps["on"]), statistics.median(tps["off"])
    report = "\n".join(
        [
            f"time to enforce (POST /v1/forget -> 201, 2 ingress replicas, {len(ms)} requests, "
            f"index growing to {args.entries} people): p50 {pct(ms, 0.5):.0f} ms, p99 {pct(ms, 0.99):.0f} ms, "
            f"max {max(ms):.0f} ms",
            f"chat throughput at concurrency 8 ({args.requests} requests x {args.max_tokens} tokens, "
            f"{args.entries} people in the index): guard on {on:.1f} tok/s, guard off {off:.1f} tok/s "
            f"-> guard keeps {on / off:.1%} (rounds: on {[round(x, 1) for x in tps['on']]}, "
            f"off {[round(x, 1) for x in tps['off']]})",
        ]
    )
    publish_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
