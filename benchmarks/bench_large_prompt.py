"""A huge prompt against the live gateway (issue 14, item 3): what a 2 MiB prompt does to a concurrent
small chat and to a forget acknowledgement, and what the huge request itself gets back.

    .venv/bin/python benchmarks/bench_large_prompt.py [--model DIR] [--rounds 3] [--small 20]

One `lethe serve` with one ingress replica (the worst case: the huge prompt and everyone else share
one event loop) and the probe forget set (tests/gateway/guard/data/forget_set.json, 30 people) filed.
Each round measures, side by side:
- quiet: `--small` small chats ("Say hi.", streamed, `--max-tokens`) one after another, and `--acks`
  forget requests filed one after another (each returns only once every replica enforces it);
- loaded: the same, while huge prompts (just under the body limit, ordinary prose in messages of the
  largest allowed size) are sent back to back.
Reported: small-chat latency p50/p99 quiet vs loaded (target: loaded <= 1.10 x quiet), forget
acknowledgement p50/max quiet vs loaded (target: within the quiet p99), and each huge request's status,
error code and time (target: a clear 4xx such as 413 `prompt_too_large_to_check`, or a normal answer,
within the guard's budget `guard.check_budget_s`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from reporting import publish_report  # noqa: E402

TOKEN = "bench-token"
MESSAGE_CHARS = 65_536  # gateway.chat.protocol.MAX_MESSAGE_CHARS
BODY_LIMIT = 2 * 1024 * 1024  # server.max_body_bytes default
WORDS = "the a river walked over bridge quietly mountain after dinner we said that people often think about".split()  # noqa: SIM905 (one line of prose)


def forget_bodies() -> list[dict]:
    rows = json.loads((ROOT / "tests/gateway/guard/data/forget_set.json").read_text(encoding="utf-8"))
    return [
        {
            "subject": r["subject"],
            "texts": r["texts"],
            "qa": [{"question": q, "answer": a} for q, a in r["qa"]],
            "literals": r["literals"],
            "reason": r["reason"],
        }
        for r in rows
    ]


def extra_bodies(n: int, seed: int) -> list[dict]:
    """Forget requests filed during the measurement (fictitious, unrelated to the chats)."""
    rng = random.Random(seed)
    bodies = []
    for i in range(n):
        name = f"Testperson{seed}x{i} Benchmarkdottir"
        phone = "+47 " + " ".join(str(rng.randint(100, 999)) for _ in range(3))
        bodies.append(
            {
                "subject": name,
                "qa": [{"question": f"Where does {name} work?", "answer": f"{name} works at Quarry {i} Ltd."}],
                "literals": [phone],
                "reason": "gdpr",
            }
        )
    return bodies


def huge_body(model: str, body_limit: int) -> dict:
    """Ordinary prose just under the body limit, in messages of the largest allowed size."""
    rng = random.Random(7)
    budget = body_limit - 16 * 1024  # JSON framing of ~32 messages
    messages, size = [], 0
    while size + 1024 < budget:
        chars = min(MESSAGE_CHARS, budget - size)
        parts, n = [], 0
        while n < chars - 120:
            sentence = " ".join(rng.choice(WORDS) for _ in range(14)).capitalize() + ". "
            parts.append(sentence)
            n += len(sentence)
        content = "".join(parts)[: chars - 1]
        messages.append({"role": "user", "content": content})
        size += len(content) + 40
    return {"model": model, "messages": messages, "max_tokens": 16, "temperature": 0}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass
class Phase:
    small_s: list[float] = field(default_factory=list)
    ack_s: list[float] = field(default_factory=list)
    huge: list[tuple[int, str, float]] = field(default_factory=list)  # status, code, seconds


async def small_chat(http: httpx.AsyncClient, model: str, max_tokens: int) -> float:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Say hi."}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
    }
    start = time.perf_counter()
    async with http.stream("POST", "/v1/chat/completions", json=body) as resp:
        resp.raise_for_status()
        async for _ in resp.aiter_lines():
            pass
    return time.perf_counter() - start


async def ack(http: httpx.AsyncClient, body: dict) -> float:
    start = time.perf_counter()
    resp = await http.post("/v1/forget", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    resp.raise_for_status()
    return time.perf_counter() - start


def flood(base_url: str, body: bytes, stop: Any, results: Any, interval_s: float) -> None:
    """The attacker: huge prompts from a process of its own, back to back or one every `interval_s`, the
    body encoded once (its own JSON encoding must not stall the measuring client's event loop, nor cost
    CPU per request)."""
    answers: list[tuple[int, str, float]] = []
    with httpx.Client(base_url=base_url, timeout=600) as http:
        while not stop.is_set():
            start = time.perf_counter()
            if answers and interval_s:
                stop.wait(interval_s)
                if stop.is_set():
                    break
                start = time.perf_counter()
            try:
                resp = http.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
            except httpx.TransportError as exc:
                answers.append((0, type(exc).__name__, time.perf_counter() - start))
                continue
            took = time.perf_counter() - start
            code = ""
            if resp.status_code != 200:
                try:
                    code = resp.json()["error"]["code"] or ""
                except (ValueError, KeyError, TypeError):
                    code = resp.text[:80]
            answers.append((resp.status_code, code, took))
    results.put(answers)  # once: a queue written per answer fills its pipe before the parent reads it


async def phase(
    http: httpx.AsyncClient, model: str, args: argparse.Namespace, acks: list[dict], huge: bytes | None
) -> Phase:
    result = Phase()
    ctx = multiprocessing.get_context("spawn")
    stop, results = ctx.Event(), ctx.Queue()
    attacker = None
    if huge is not None:
        attacker = ctx.Process(
            target=flood, args=(str(http.base_url), huge, stop, results, args.attacker_interval), daemon=True
        )
        attacker.start()
        await asyncio.sleep(1.0)  # the first huge prompt is on its way
    for _ in range(args.small):
        result.small_s.append(await small_chat(http, model, args.max_tokens))
    for body in acks:
        result.ack_s.append(await ack(http, body))
    stop.set()
    if attacker is not None:
        result.huge = await asyncio.to_thread(results.get, True, 600)
        await asyncio.to_thread(attacker.join, 60)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(Path.home() / ".lethe/models/smollm2-135m-instruct"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--small", type=int, default=20, help="small chats per phase")
    parser.add_argument("--acks", type=int, default=3, help="forget requests filed per phase")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--body-limit", type=int, default=BODY_LIMIT)
    parser.add_argument(
        "--attacker-interval",
        type=float,
        default=0.0,
        help="seconds between huge prompts (0: back to back, a flood once each is refused in milliseconds)",
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/large_prompt.md"))
    args = parser.parse_args()

    from tests.support.lethe_server import LetheServer

    model = Path(args.model).name
    home = Path(tempfile.mkdtemp(prefix="lethe-bench-large-prompt-"))
    env = {"LETHE_MODEL": args.model, "LETHE_INGRESS_REPLICAS": "1", "LETHE_ADMIN_TOKEN": TOKEN}
    server = LetheServer(home, env, home / "serve.log").start()
    quiet, loaded = Phase(), Phase()
    try:

        async def run() -> None:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=600) as http:
                for body in forget_bodies():
                    await ack(http, body)
                await small_chat(http, model, args.max_tokens)  # warm up
                body = huge_body(model, args.body_limit)
                huge = json.dumps(body).encode()
                print(
                    f"huge prompt: {sum(len(m['content']) for m in body['messages'])} characters in "
                    f"{len(body['messages'])} messages, {len(huge)} bytes",
                    file=sys.stderr,
                )
                for rnd in range(args.rounds):
                    for name, target, load in (("quiet", quiet, None), ("loaded", loaded, huge)):
                        acks = extra_bodies(args.acks, seed=rnd * 2 + (name == "loaded"))
                        got = await phase(http, model, args, acks, load)
                        target.small_s += got.small_s
                        target.ack_s += got.ack_s
                        target.huge += got.huge
                        print(
                            f"round {rnd + 1} {name}: small p50 {statistics.median(got.small_s) * 1000:.0f} ms, "
                            f"ack p50 {statistics.median(got.ack_s) * 1000:.0f} ms, huge {len(got.huge)} "
                            f"{sorted({(st, c) for st, c, _ in got.huge})}",
                            file=sys.stderr,
                        )

        asyncio.run(run())
    finally:
        server.stop()
        server.kill_leftovers()

    def ms(values: list[float], q: float) -> float:
        return pct(values, q) * 1000

    q50, l50 = ms(quiet.small_s, 0.5), ms(loaded.small_s, 0.5)
    statuses = sorted({(s, c) for s, c, _ in loaded.huge})
    huge_s = [t for _, _, t in loaded.huge]
    report = "\n".join(
        [
            f"huge prompts {'back to back' if not args.attacker_interval else f'one every {args.attacker_interval} s'}",
            f"small chat (streamed, {args.max_tokens} tokens), {len(quiet.small_s)} per phase: quiet p50 {q50:.0f} ms "
            f"p99 {ms(quiet.small_s, 0.99):.0f} ms; with 2 MiB prompts in flight p50 {l50:.0f} ms "
            f"p99 {ms(loaded.small_s, 0.99):.0f} ms -> {l50 / q50:.2f}x (target <= 1.10x)",
            f"forget acknowledgement: quiet p50 {ms(quiet.ack_s, 0.5):.0f} ms p99 {ms(quiet.ack_s, 0.99):.0f} ms; "
            f"loaded p50 {ms(loaded.ack_s, 0.5):.0f} ms max {max(loaded.ack_s) * 1000:.0f} ms "
            "(target: within the quiet p99)",
            f"huge requests ({len(loaded.huge)}): answers {statuses}, time p50 {ms(huge_s, 0.5):.0f} ms "
            f"max {max(huge_s, default=0) * 1000:.0f} ms (target: a clear 4xx or a normal answer within "
            "guard.check_budget_s)",
        ]
    )
    publish_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
