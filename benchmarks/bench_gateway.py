"""Gateway overhead: the same prompts through `lethe serve` (HTTP, Ray Serve) and through vLLM
called directly, side by side in one run, at concurrency 1 and 8.

    .venv/bin/python benchmarks/bench_gateway.py [--model DIR] [--max-tokens 64] [--rounds 2]
        [--variant NAME:VAR=VALUE,VAR=VALUE ...]   # more gateways, each with its own environment

Both paths run the same engine configuration pinned to the same core; phases alternate
(direct, gateway, direct, gateway, …) so drift on a shared machine hits both. Output: a
markdown table on stdout and in benchmarks/results/gateway.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from reporting import publish_report

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

TOPICS = [
    "the sea",
    "a lighthouse",
    "winter",
    "a library",
    "trains",
    "the moon",
    "bread",
    "a garden",
    "rivers",
    "a market",
    "clocks",
    "mountains",
    "bees",
    "a violin",
    "rain",
    "maps",
]


def prompts(n: int) -> list[str]:
    return [f"Write a short paragraph about {TOPICS[i % len(TOPICS)]}." for i in range(n)]


@dataclass
class Sample:
    ttft_s: float
    tokens: int


@dataclass
class PhaseResult:
    wall_s: float
    samples: list[Sample]

    @property
    def tokens_per_s(self) -> float:
        return sum(s.tokens for s in self.samples) / self.wall_s


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run_concurrent(fn, items: list[str], concurrency: int) -> PhaseResult:
    sem = asyncio.Semaphore(concurrency)

    async def one(p: str) -> Sample:
        async with sem:
            return await fn(p)

    start = time.perf_counter()
    samples = await asyncio.gather(*(one(p) for p in items))
    return PhaseResult(time.perf_counter() - start, list(samples))


class DirectVLLM:
    """vLLM AsyncLLM in this process, configured like a Lethe LLM replica."""

    def __init__(self, model: str, max_tokens: int) -> None:
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(model)
        self.model = model
        self.max_tokens = max_tokens

    def start(self) -> None:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = "0"
        os.environ["VLLM_CPU_KVCACHE_SPACE"] = "1"
        self.engine = AsyncLLM.from_engine_args(
            AsyncEngineArgs(
                model=self.model,
                dtype="bfloat16",
                max_model_len=2048,
                enforce_eager=True,
                distributed_executor_backend="uni",
                seed=0,
                max_num_seqs=32,
            )
        )

    async def __call__(self, prompt: str) -> Sample:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        text = self.tok.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        params = SamplingParams(max_tokens=self.max_tokens, temperature=0, output_kind=RequestOutputKind.DELTA)
        start = time.perf_counter()
        ttft = None
        tokens = 0
        async for out in self.engine.generate(text, params, request_id=uuid.uuid4().hex):
            if ttft is None and out.outputs[0].text:
                ttft = time.perf_counter() - start
            tokens += len(out.outputs[0].token_ids)
        return Sample(ttft or 0.0, tokens)

    def stop(self) -> None:
        self.engine.shutdown()


class GatewayClient:
    def __init__(self, base_url: str, model: str, max_tokens: int) -> None:
        import httpx

        self.client = httpx.AsyncClient(base_url=base_url, timeout=300, limits=httpx.Limits(max_connections=64))
        self.model = model
        self.max_tokens = max_tokens

    async def __call__(self, prompt: str) -> Sample:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0,
            "max_tokens": self.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        start = time.perf_counter()
        ttft = None
        tokens = 0
        async with self.client.stream("POST", "/v1/chat/completions", json=body) as resp:
            resp.raise_for_status()
            async for line in resp.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
                elif ttft is None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    ttft = time.perf_counter() - start
        return Sample(ttft or 0.0, tokens)


async def measure(fn, concurrencies: list[int], n_requests: int) -> dict[int, PhaseResult]:
    await fn("Warm up the engine.")
    return {
        c: await run_concurrent(fn, prompts(n_requests if c > 1 else max(4, n_requests // 4)), c) for c in concurrencies
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(Path.home() / ".lethe/models/smollm2-135m-instruct"))
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--requests", type=int, default=32, help="requests per phase at concurrency 8")
    parser.add_argument("--rounds", type=int, default=2, help="alternating direct/gateway rounds")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:VAR=VALUE,...",
        help="also measure a gateway started with these environment variables (e.g. Ray Serve settings), "
        "in the same rounds",
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/gateway.md"))
    args = parser.parse_args()
    concurrencies = [1, 8]
    gateways: dict[str, dict[str, str]] = {"gateway": {}}
    for spec in args.variant:
        name, _, assignments = spec.partition(":")
        gateways[name] = dict(a.split("=", 1) for a in assignments.split(",") if a)

    from tests.support.lethe_server import LetheServer

    results: dict[str, dict[int, list[PhaseResult]]] = {
        path: {c: [] for c in concurrencies} for path in ("direct", *gateways)
    }
    for rnd in range(args.rounds):
        direct = DirectVLLM(args.model, args.max_tokens)
        direct.start()
        for c, r in asyncio.run(measure(direct, concurrencies, args.requests)).items():
            results["direct"][c].append(r)
        direct.stop()
        del direct

        for name, env in gateways.items():
            home = Path(tempfile.mkdtemp(prefix="lethe-bench-"))
            server = LetheServer(
                home, {"LETHE_MODEL": args.model, "LETHE_LLM_REPLICAS": "1", **env}, home / "serve.log"
            )
            server.start()
            try:
                client = GatewayClient(server.base_url, Path(args.model).name, args.max_tokens)
                for c, r in asyncio.run(measure(client, concurrencies, args.requests)).items():
                    results[name][c].append(r)
            finally:
                server.stop()
                server.kill_leftovers()
        print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)

    lines = [
        "| path | concurrency | tokens/s (median of rounds) | TTFT p50 (ms) | TTFT p99 (ms) | requests |",
        "|---|---|---|---|---|---|",
    ]
    summary: dict[tuple[str, int], tuple[float, float]] = {}
    for path in results:
        for c in concurrencies:
            phases = results[path][c]
            tps = statistics.median(p.tokens_per_s for p in phases)
            ttfts = [s.ttft_s * 1000 for p in phases for s in p.samples]
            summary[(path, c)] = (tps, pct(ttfts, 0.5))
            lines.append(
                f"| {path} | {c} | {tps:.1f} | {pct(ttfts, 0.5):.1f} | {pct(ttfts, 0.99):.1f} | "
                f"{sum(len(p.samples) for p in phases)} |"
            )
    for name, env in gateways.items():
        settings = ", ".join(f"{k}={v}" for k, v in env.items()) or "defaults"
        for c in concurrencies:
            ratio = summary[(name, c)][0] / summary[("direct", c)][0]
            added = summary[(name, c)][1] - summary[("direct", c)][1]
            lines.append(
                f"\nconcurrency {c}: {name} ({settings}) keeps {ratio:.1%} of direct tokens/s; TTFT p50 +{added:.1f} ms"
            )
    report = "\n".join(lines)
    publish_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
