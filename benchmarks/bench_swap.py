"""Hot swap under load on the live gateway: swap duration per replica and end to end, and chat
latency during swaps vs steady state, in one run.

    .venv/bin/python benchmarks/bench_swap.py [--model DIR] [--replicas 2] [--swaps 4] [--baseline]

`--baseline` serves with the settings before issue 16 (`swap.overlap: false`, 16 smoke tokens):
one replica after another, for a side-by-side run.

One `lethe serve` with `--replicas` LLM replicas of the model; `--concurrency` closed-loop clients
send non-streaming chats the whole time. The run alternates steady windows and swaps between the
base model and an imported copy with one changed embedding row (promote, then rollback, …), and
records every request's latency, whether it overlapped a swap, and its status. Output: a markdown
report on stdout and in benchmarks/results/swap.md, with the measured load rate (bytes/s) and
what it implies for 7B and 70B models.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from bench_gateway import pct, prompts  # noqa: E402
from reporting import publish_report  # noqa: E402

TOKEN = "bench-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Request:
    start: float
    end: float
    ok: bool
    version: str


def load(base_url: str, model: str, max_tokens: int, stop: threading.Event, out: list[Request], seed: int) -> None:
    items = prompts(64)
    i = seed
    with httpx.Client(base_url=base_url, timeout=300) as http:
        while not stop.is_set():
            start = time.monotonic()
            try:
                resp = http.post(
                    "/v1/chat/completions",
                    json={
                        "model": model,
                        "messages": [{"role": "user", "content": items[i % len(items)]}],
                        "max_tokens": max_tokens,
                        "temperature": 0,
                    },
                )
                ok = resp.status_code == 200
                version = resp.headers.get("x-lethe-model-version", "")
            except httpx.HTTPError:
                ok, version = False, ""
            out.append(Request(start, time.monotonic(), ok, version))
            i += 1


def wait_replicas(http: httpx.Client, n: int) -> None:
    deadline = time.monotonic() + 300
    while len(http.get("/v1/admin/models/versions", headers=AUTH).json()["replicas"]) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {n} LLM replicas after 300 s")
        time.sleep(1)


def _steps(report: dict) -> str:
    """One swap's replicas, step by step (stage / drain / wait for turn / load / smoke, seconds)."""
    return "; ".join(
        f"{r['replica']} {r.get('stage_s', 0.0):.2f}/{r['drain_s']:.2f}/{r.get('wait_s', 0.0):.2f}/"
        f"{r['load_s']:.2f}/{r['smoke_s']:.2f}"
        for r in report.get("replicas", [])
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(Path.home() / ".lethe/models/smollm2-135m-instruct"))
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4, help="0: swaps on an idle gateway")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--swaps", type=int, default=4, help="promote/rollback pairs count as two")
    parser.add_argument("--steady-s", type=float, default=20.0, help="steady window before each swap")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/swap.md"))
    parser.add_argument(
        "--baseline", action="store_true", help="swap.overlap false and 16 smoke tokens (the order before issue 16)"
    )
    args = parser.parse_args()

    from tests.support.lethe_server import LetheServer
    from tests.support.model_builders import build_embedding_variant

    model = Path(args.model)
    work = Path(tempfile.mkdtemp(prefix="lethe-bench-swap-"))
    variant = build_embedding_variant(model, work / "variant", [3575], scale=0.05)
    weight_bytes = sum(f.stat().st_size for f in model.glob("*.safetensors"))
    env = {"LETHE_MODEL": str(model), "LETHE_LLM_REPLICAS": str(args.replicas), "LETHE_ADMIN_TOKEN": TOKEN}
    mode = "baseline: one replica after another, 16 smoke tokens" if args.baseline else "overlapped (defaults)"
    if args.baseline:
        import yaml

        tree = yaml.safe_load((ROOT / "deploy/local.yaml").read_text())
        tree["swap"] = {**tree.get("swap", {}), "overlap": False, "smoke_max_tokens": 16}
        (work / "config.yaml").write_text(yaml.safe_dump(tree))
        env["LETHE_CONFIG"] = str(work / "config.yaml")
    server = LetheServer(work / "home", env, work / "serve.log").start()
    requests: list[Request] = []
    swaps: list[tuple[float, float, dict]] = []
    stop = threading.Event()
    try:
        with httpx.Client(base_url=server.base_url, timeout=900) as http:
            wait_replicas(http, args.replicas)
            served = http.get("/v1/models").json()["data"][0]["id"]
            resp = http.post("/v1/admin/models/versions", headers=AUTH, json={"path": str(variant)})
            resp.raise_for_status()
            variant_id = resp.json()["id"]
            threads = [
                threading.Thread(
                    target=load, args=(server.base_url, served, args.max_tokens, stop, requests, n), daemon=True
                )
                for n in range(args.concurrency)
            ]
            for t in threads:
                t.start()
            for n in range(args.swaps):
                time.sleep(args.steady_s)
                start = time.monotonic()
                if n % 2 == 0:
                    resp = http.post("/v1/admin/models/promote", headers=AUTH, json={"version": variant_id})
                else:
                    resp = http.post("/v1/admin/models/rollback", headers=AUTH)
                end = time.monotonic()
                resp.raise_for_status()
                swaps.append((start, end, resp.json()))
                print(f"swap {n + 1}/{args.swaps}: {end - start:.2f} s; {_steps(resp.json())}", flush=True)
            time.sleep(args.steady_s)
            stop.set()
            for t in threads:
                t.join(300)
    finally:
        stop.set()
        server.stop()
        server.kill_leftovers()

    def during(r: Request) -> bool:
        return any(r.start < end and r.end > start for start, end, _ in swaps)

    warm = [r for r in requests if r.start > swaps[0][0] - args.steady_s + 5] if swaps else requests
    steady = [r.end - r.start for r in warm if r.ok and not during(r)]
    swapping = [r.end - r.start for r in warm if r.ok and during(r)]
    failed = sum(not r.ok for r in requests)
    steps = [s for _, _, report in swaps for s in report["replicas"]]
    end_to_end = [end - start for start, end, _ in swaps]
    load_s = statistics.median(s["load_s"] for s in steps)
    rate = weight_bytes / load_s

    def excess(start: float, end: float) -> float:
        """The swap's time beyond the longest wait for a request in flight when it began (the drain floor)."""
        inflight = [r.end - start for r in requests if r.start < start < r.end]
        return (end - start) - max(inflight, default=0.0)

    beyond = [excess(start, end) for start, end, _ in swaps]
    lines = [
        "## Hot swap under load",
        "",
        f"Mode: {mode}.",
        f"Model: `{model.name}` ({weight_bytes / 1e6:.0f} MB of safetensors), {args.replicas} LLM replicas, "
        f"{args.concurrency} closed-loop clients, max_tokens {args.max_tokens}, {len(swaps)} swaps "
        f"(promote/rollback alternating). Machine: {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} at the end.",
        "",
        f"- Requests: {len(requests)}, **failed: {failed}**.",
        f"- End-to-end swap (HTTP promote → 200, all replicas): median {statistics.median(end_to_end):.2f} s, "
        f"max {max(end_to_end):.2f} s (idle target ≤ 2 s); each: {', '.join(f'{x:.2f}' for x in end_to_end)} s.",
        *(
            f"  - swap {n + 1}, per replica stage / drain / wait for turn / load / smoke (s): {_steps(report)}"
            for n, (_, _, report) in enumerate(swaps)
        ),
        f"- Beyond the longest request in flight at the swap's start: median {statistics.median(beyond):.2f} s, "
        f"max {max(beyond):.2f} s (target ≤ 2 s).",
        "- Per replica (median of {n}): stage {st:.2f} s (still serving), drain {d:.2f} s, wait for its turn "
        "{w:.2f} s, load {l:.2f} s, smoke test {s:.2f} s, total {t:.2f} s.".format(
            n=len(steps),
            st=statistics.median(x.get("stage_s", 0.0) for x in steps),
            w=statistics.median(x.get("wait_s", 0.0) for x in steps),
            d=statistics.median(x["drain_s"] for x in steps),
            l=load_s,
            s=statistics.median(x["smoke_s"] for x in steps),
            t=statistics.median(x["total_s"] for x in steps),
        ),
        (
            f"- Latency steady: p50 {pct(steady, 0.5):.3f} s, p99 {pct(steady, 0.99):.3f} s (n={len(steady)}).\n"
            f"- Latency overlapping a swap: p50 {pct(swapping, 0.5):.3f} s, p99 {pct(swapping, 0.99):.3f} s "
            f"(n={len(swapping)}); p99 ratio {pct(swapping, 0.99) / pct(steady, 0.99):.2f}× (target ≤ 2×)."
        )
        if steady and swapping
        else "- No chat traffic (--concurrency 0): swap times without requests to drain.",
        f"- Weight load rate: {rate / 1e6:.0f} MB/s (bytes of safetensors / median `reload_weights` time).",
        f"- At that rate, on paper: 7B bf16 (14 GB) ≈ {14e9 / rate:.0f} s per replica; 70B bf16 (140 GB) "
        f"≈ {140e9 / rate:.0f} s from one reader, ≈ {17.5e9 / rate:.0f} s with 8 tensor-parallel workers "
        "each loading its 1/8 shard in parallel.",
    ]
    report = "\n".join(lines)
    publish_report(report, args.out)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
