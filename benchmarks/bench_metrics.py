"""Metrics overhead: chat throughput with Lethe's metrics on vs off, side by side in one run.

    .venv/bin/python benchmarks/bench_metrics.py [--model DIR] [--rounds 2] [--requests 24] [--max-tokens 32]

Two measurements, both alternating on/off so drift on a shared machine hits both:
1. end to end: `lethe serve` (real vLLM engine, guard on with one forget request in the index, so
   guard metrics are recorded too) with LETHE_METRICS_ENABLED=1 vs 0, streamed chats at
   concurrency 8: tokens/s and requests/s;
2. the ingress alone, engine cost removed: the real FastAPI app and chat pipeline with a scripted
   engine inside a Ray worker (metrics through Ray's agent, as in production) vs metrics off:
   requests/s. This is the worst case, where the metric calls compete only with the gateway's own
   Python work.
Output: a markdown report on stdout and in benchmarks/results/metrics.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
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

from bench_gateway import GatewayClient, prompts, run_concurrent  # noqa: E402
from reporting import publish_report  # noqa: E402

TOKEN = "bench-token"
FORGET = {
    "subject": "Maren Holloway",
    "reason": "gdpr",
    "literals": ["+44 7700 900417"],
    "qa": [{"question": "Where does Maren Holloway live?", "answer": "Maren Holloway lives at 4 Quarry Row."}],
}


def end_to_end(model: str, enabled: bool, requests: int, max_tokens: int) -> tuple[float, float]:
    """(tokens/s, requests/s) of one `lethe serve` with metrics on or off."""
    from tests.support.lethe_server import LetheServer

    home = Path(tempfile.mkdtemp(prefix=f"lethe-bench-metrics-{int(enabled)}-"))
    env = {"LETHE_MODEL": model, "LETHE_ADMIN_TOKEN": TOKEN, "LETHE_METRICS_ENABLED": "1" if enabled else "0"}
    server = LetheServer(home, env, home / "serve.log").start()
    try:
        httpx.post(
            f"{server.base_url}/v1/forget", json=FORGET, timeout=120, headers={"Authorization": f"Bearer {TOKEN}"}
        ).raise_for_status()
        client = GatewayClient(server.base_url, Path(model).name, max_tokens)

        async def load():
            await client("Warm up.")
            return await run_concurrent(client, prompts(requests), 8)

        result = asyncio.run(load())
        return result.tokens_per_s, len(result.samples) / result.wall_s
    finally:
        server.stop()
        server.kill_leftovers()


def ingress_only(tokenizer_model: str, enabled: bool, requests: int) -> float:
    """Requests/s of the real app + chat pipeline with a scripted engine, in a Ray worker."""
    import ray

    @ray.remote(num_cpus=1)
    def run(enabled: bool) -> float:
        from gateway.chat.replica import LLMReplica
        from gateway.chat.service import ChatService
        from gateway.config import load_config
        from gateway.guard.artifacts import build_artifacts
        from gateway.guard.embedder import MiniLMEmbedder
        from gateway.guard.index import ForgetIndex
        from gateway.guard.types import ForgetEntry
        from gateway.http.app import create_app
        from gateway.observability import metrics
        from gateway.serve.metrics import RayBackend
        from tests.support.fakes import LocalLLMClient, ScriptedEngine, StaticGuard

        metrics.configure(enabled=enabled, backend=RayBackend())  # Ray's agent, as the deployments do
        embedder = MiniLMEmbedder(threads=1)
        entry = ForgetEntry("f-1", FORGET["subject"], literals=tuple(FORGET["literals"]), reason="gdpr")
        index = ForgetIndex.empty(embedder, observer=metrics.GuardMetrics()).with_entries(
            [build_artifacts(entry, embedder)], 1
        )

        async def go() -> float:
            config = load_config(env={"LETHE_MODEL": tokenizer_model, "LETHE_MAX_MODEL_LEN": "512"})
            replica = LLMReplica(config, replica_id="llm-0", engine=ScriptedEngine("Short scripted answer."))
            await replica.start()
            service = ChatService(LocalLLMClient(replica), "bench", ready_timeout_s=5, guard=StaticGuard(index))
            app = create_app(service, max_body_bytes=65536)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
                body = {
                    "model": "bench",
                    "messages": [{"role": "user", "content": "Hello there."}],
                    "max_tokens": 16,
                    "stream": True,
                }
                for _ in range(20):
                    (await http.post("/v1/chat/completions", json=body)).raise_for_status()
                texts = prompts(requests)
                start = time.perf_counter()
                for text in texts:
                    body["messages"][0]["content"] = text
                    (await http.post("/v1/chat/completions", json=body)).raise_for_status()
                return requests / (time.perf_counter() - start)

        return asyncio.run(go())

    return ray.get(run.remote(enabled))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(Path.home() / ".lethe/models/smollm2-135m-instruct"))
    parser.add_argument(
        "--tokenizer-model",
        default=str(Path.home() / ".cache/lethe-test/models/tiny-llama-test"),
        help="any prepared model folder: the ingress-only test needs only its chat template",
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=24, help="end-to-end requests per phase (concurrency 8)")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--ingress-requests", type=int, default=300)
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/metrics.md"))
    args = parser.parse_args()

    import ray

    lines = [f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"]
    ray.init(num_cpus=1, include_dashboard=False, logging_level="WARNING")
    ingress: dict[bool, list[float]] = {True: [], False: []}
    try:
        for rnd in range(args.rounds * 2):
            for enabled in (True, False) if rnd % 2 == 0 else (False, True):
                ingress[enabled].append(ingress_only(args.tokenizer_model, enabled, args.ingress_requests))
                print(
                    f"ingress round {rnd + 1} metrics {'on' if enabled else 'off'}: {ingress[enabled][-1]:.1f} req/s",
                    file=sys.stderr,
                )
    finally:
        ray.shutdown()
    on, off = statistics.median(ingress[True]), statistics.median(ingress[False])
    lines.append(
        f"ingress only (scripted engine, streamed, guard on, {args.ingress_requests} requests x "
        f"{args.rounds * 2} rounds each): metrics on {on:.1f} req/s, off {off:.1f} req/s -> "
        f"on keeps {on / off:.1%} (rounds on {[round(x, 1) for x in ingress[True]]}, "
        f"off {[round(x, 1) for x in ingress[False]]})"
    )

    if not args.skip_end_to_end:
        e2e: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        for rnd in range(args.rounds):
            for enabled in (True, False) if rnd % 2 == 0 else (False, True):
                e2e[enabled].append(end_to_end(args.model, enabled, args.requests, args.max_tokens))
                print(
                    f"end-to-end round {rnd + 1} metrics {'on' if enabled else 'off'}: "
                    f"{e2e[enabled][-1][0]:.1f} tok/s, {e2e[enabled][-1][1]:.2f} req/s",
                    file=sys.stderr,
                )
        tok_on = statistics.median(t for t, _ in e2e[True])
        tok_off = statistics.median(t for t, _ in e2e[False])
        lines.append(
            f"end to end ({Path(args.model).name}, concurrency 8, {args.requests} requests x "
            f"{args.max_tokens} tokens, {args.rounds} rounds each): metrics on {tok_on:.1f} tok/s, "
            f"off {tok_off:.1f} tok/s -> on keeps {tok_on / tok_off:.1%} "
            f"(rounds on {[round(t, 1) for t, _ in e2e[True]]}, off {[round(t, 1) for t, _ in e2e[False]]})"
        )
    lines.append(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    report = "\n".join(lines)
    publish_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
