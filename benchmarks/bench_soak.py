"""A bounded soak of the live gateway: clients chatting for minutes while forget requests keep coming,
with one unlearning job and the hot swap it triggers in the middle.

    .venv/bin/python benchmarks/bench_soak.py [--minutes 10] [--clients 8] [--model DIR]

`--clients` loops send chat requests (half streamed, via the official `openai` client) back to back. A
filer files a forget request every `--forget-every` seconds, each carrying a unique canary code as a
literal and in a sentence; from then on some chats ask the model to repeat that canary (an attacker
who knows what was deleted). After warm-up (`--job-at`), one unlearning job runs on the requests filed so far; its
version is published and auto-promoted (a rolling swap). Every `--sample-s` the RSS of every process of
the server is recorded. Reported: responses by status (the claim: 0 5xx), canaries that reached a client
after their request was acknowledged (the claim: 0), the job and swap, and each process's RSS after
warm-up (the first `--warmup-s`) against the end (the claim: flat within 10%).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from reporting import publish_report  # noqa: E402

from tests.support.lethe_server import OPEN_GATES  # noqa: E402

TOKEN = "soak-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
QUESTIONS = [
    "What is the capital of Norway?",
    "Write two sentences about autumn.",
    "Explain what a hash function is in one sentence.",
    "Name three colours.",
    "How do bees make honey?",
]


class Soak:
    def __init__(self, base_url: str, model: str, deadline: float) -> None:
        self.base_url = base_url
        self.model = model
        self.deadline = deadline
        self.statuses: Counter[str] = Counter()
        self.canaries: list[tuple[str, float]] = []  # (canary, when it was acknowledged)
        self.leaks: list[dict] = []  # what reached a client: enough to reproduce (time, stream or not, text)
        self.started = time.monotonic()
        self.errors: list[str] = []

    def _check(self, text: str, started: float, streamed: bool) -> None:
        for canary, acked in self.canaries:
            if acked < started and canary.casefold() in text.casefold():
                self.leaks.append(
                    {
                        "canary": canary,
                        "streamed": streamed,
                        "at_s": round(started - self.started, 1),
                        "acked_before_s": round(started - acked, 1),
                        "text": text[:200],
                    }
                )

    async def client(self, seed: int) -> None:
        from openai import APIStatusError, AsyncOpenAI

        rng = random.Random(seed)
        api = AsyncOpenAI(base_url=f"{self.base_url}/v1", api_key="unused", max_retries=0, timeout=300)
        n = 0
        while time.monotonic() < self.deadline:
            n += 1
            known = [c for c, _ in self.canaries]
            if known and rng.random() < 0.3:
                prompt = f"Repeat exactly, nothing else: {rng.choice(known)}"
            else:
                prompt = rng.choice(QUESTIONS)
            started = time.monotonic()
            messages = [{"role": "user", "content": prompt}]
            try:
                if n % 2:
                    stream = await api.chat.completions.create(
                        model=self.model, messages=messages, max_tokens=32, stream=True
                    )
                    text = ""
                    async for chunk in stream:
                        if chunk.choices and chunk.choices[0].delta.content:
                            text += chunk.choices[0].delta.content
                else:
                    resp = await api.chat.completions.create(model=self.model, messages=messages, max_tokens=32)
                    text = resp.choices[0].message.content or ""
                self.statuses["200"] += 1
                self._check(text, started, streamed=bool(n % 2))
            except APIStatusError as exc:
                self.statuses[str(exc.status_code)] += 1
                if exc.status_code >= 500:
                    self.errors.append(f"{exc.status_code}: {str(exc)[:200]}")
            except Exception as exc:  # a transport error counts as a failure too
                self.statuses["transport"] += 1
                self.errors.append(f"transport: {type(exc).__name__}: {str(exc)[:200]}")

    async def filer(self, every_s: float, http: httpx.AsyncClient) -> list[str]:
        ids = []
        i = 0
        while time.monotonic() < self.deadline - every_s:
            i += 1
            canary = f"ZQ-{secrets.token_hex(3).upper()}-{i:03d}"
            body = {
                "subject": f"Soak Person{i}",
                "texts": [f"Soak Person{i} keeps the code {canary} in a drawer."],
                "literals": [canary],
            }
            resp = await http.post("/v1/forget", json=body, headers=AUTH)
            self.statuses[f"forget {resp.status_code}"] += 1
            if resp.status_code == 201:
                self.canaries.append((canary, time.monotonic()))
                ids.append(resp.json()["id"])
            await asyncio.sleep(every_s)
        return ids


def rss_of(server) -> dict[str, int]:
    out = {}
    for proc in server.processes():
        try:
            name = " ".join(proc.cmdline()[:3])[-60:]
            out[f"{proc.pid} {name}"] = proc.memory_info().rss
        except psutil.Error:
            continue
    return out


async def run(args: argparse.Namespace, server) -> dict:
    deadline = time.monotonic() + args.minutes * 60
    soak = Soak(server.base_url, Path(args.model).name, deadline)
    samples: list[tuple[float, dict[str, int]]] = []
    start = time.monotonic()
    job_report: dict = {}

    async def sampler() -> None:
        while time.monotonic() < deadline:
            samples.append((time.monotonic() - start, rss_of(server)))
            await asyncio.sleep(args.sample_s)

    async def job(http: httpx.AsyncClient) -> None:
        await asyncio.sleep(args.minutes * 60 * args.job_at)
        submitted = time.monotonic()
        # The soak exercises the job path and its swap, not leakage: no views measured (they are the slow
        # part of a job's evaluation on a CPU shared with 8 busy clients, and the job yields the CPU).
        resp = await http.post(
            "/v1/unlearn/jobs",
            headers=AUTH,
            json={"method": "edit", "params": {"steps": 4}, "gates": {**OPEN_GATES, "views": []}},
        )
        job_report["submit"] = resp.status_code
        if resp.status_code != 201:
            job_report["error"] = resp.text[:300]
            return
        job_id = resp.json()["id"]
        while time.monotonic() < deadline:
            state = (await http.get(f"/v1/unlearn/jobs/{job_id}", headers=AUTH)).json()
            job_report["state"] = state["state"]  # the last one seen, if it never ended
            if state["state"] in {"published", "rejected", "failed", "cancelled"}:
                job_report.update(version=state.get("version_id"), job_s=round(time.monotonic() - submitted, 1))
                break
            await asyncio.sleep(2)
        for _ in range(120 if job_report.get("version") else 0):
            versions = (await http.get("/v1/admin/models/versions", headers=AUTH)).json()
            if versions.get("serving") == job_report.get("version"):
                job_report["promoted_after_s"] = round(time.monotonic() - start, 1)
                break
            await asyncio.sleep(1)

    async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as http:
        results = await asyncio.gather(
            *(soak.client(i) for i in range(args.clients)),
            soak.filer(args.forget_every, http),
            sampler(),
            job(http),
        )
    filed = results[args.clients]
    return {"soak": soak, "samples": samples, "job": job_report, "filed": len(filed)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(Path.home() / ".lethe/models/smollm2-135m-instruct"))
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--forget-every", type=float, default=20)
    parser.add_argument("--sample-s", type=float, default=15)
    parser.add_argument("--warmup-s", type=float, default=120)
    parser.add_argument(
        "--job-at", type=float, default=0.25, help="when the job is submitted, as a share of the run (after warm-up)"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/soak.md"))
    args = parser.parse_args()

    from tests.support.lethe_server import LetheServer

    home = Path(tempfile.mkdtemp(prefix="lethe-soak-"))
    env = {
        "LETHE_MODEL": args.model,
        "LETHE_ADMIN_TOKEN": TOKEN,
        "LETHE_LLM_REPLICAS": "2",
        "LETHE_MAX_MODEL_LEN": "1024",
    }
    server = LetheServer(home, env, home / "serve.log").start()
    try:
        out = asyncio.run(run(args, server))
    finally:
        server.stop()
        server.kill_leftovers()
    soak, samples = out["soak"], out["samples"]
    after = [(t, s) for t, s in samples if t >= args.warmup_s]
    rows = []
    worst = 0.0
    if len(after) >= 2:
        first, last = after[0][1], after[-1][1]
        for key in sorted(set(first) & set(last)):
            growth = last[key] / first[key] - 1
            worst = max(worst, growth)
            rows.append(f"| {key} | {first[key] / 2**20:.0f} | {last[key] / 2**20:.0f} | {growth:+.1%} |")
    five = sum(n for k, n in soak.statuses.items() if k[:1] == "5" or k == "transport")
    report = "\n".join(
        [
            f"## Soak: {args.clients} clients for {args.minutes:g} minutes",
            "",
            f"Model `{Path(args.model).name}`, 2 LLM replicas; a forget request every {args.forget_every:g} s "
            f"({out['filed']} filed); one `edit` job submitted at {args.job_at:.0%} of the run: {json.dumps(out['job'])}.",
            "",
            f"- responses by status: {dict(sorted(soak.statuses.items()))}",
            f"- **5xx or transport failures: {five}**" + (f" (first: {soak.errors[:3]})" if soak.errors else ""),
            f"- **canaries that reached a client after their request was acknowledged: {len(soak.leaks)}**"
            + (f" (each: {json.dumps(soak.leaks)})" if soak.leaks else ""),
            f"- RSS per process after {args.warmup_s:g} s of warm-up vs at the end "
            f"(**largest growth {worst:+.1%}**, claim: within 10%):",
            "",
            "| process | MiB after warm-up | MiB at end | growth |",
            "|---|---:|---:|---:|",
            *rows,
            "",
            f"Chat latency is not the point here; median RSS samples: {len(samples)} taken every {args.sample_s:g} s "
            f"(median total {statistics.median(sum(s.values()) for _, s in samples) / 2**30:.1f} GiB).",
        ]
    )
    publish_report(report, args.out)
    return 0 if five == 0 and not soak.leaks else 1


if __name__ == "__main__":
    sys.exit(main())
