"""The stream guard on real model answers, replayed token by token in-process: where the hold-back comes from.

    .venv/bin/python benchmarks/bench_stream_replay.py [--entries 1000] [--token-ms 36] [--prefill-ms 70]

SmolLM2's greedy answers to twelve everyday prompts (generated once with transformers from the local
model folder, cached in benchmarks/results/) are fed to a StreamGuard one detokenized token at a time,
with a clock that moves `--token-ms` per token, against an index of `--entries` fictitious people (the
forget bodies of bench_stream_stalls.py). Reported per answer: how many tokens after the first one the
first release comes, the longest run of tokens with nothing released, the guard's thread CPU per token,
and which rule held the text back at each check (the token being written, an anchor, a literal, a
verbatim run). Then the same answers go through the chat service with a scripted engine (`--prefill-ms`,
then a token every `--token-ms`), empty index against the filed one: time to the first content chunk and
longest gap, as the client sees them without HTTP, Serve or vLLM. No GPU, no server; about two minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_forget import people  # noqa: E402
from bench_stream_stalls import UNRELATED  # noqa: E402
from reporting import publish_report  # noqa: E402

# The live benchmark's six everyday prompts first (bench_stream_stalls.UNRELATED), then six more.
PROMPTS = [
    *UNRELATED,
    "Give me a recipe for pancakes.",
    "What is the capital of France and what is it known for?",
    "Summarise the plot of Romeo and Juliet.",
    "How do I reset my router?",
    "Tell me about the history of Rome.",
    "Write a short email to a colleague about a meeting on Tuesday.",
]


def answers(model: Path, cache: Path, max_tokens: int) -> list[list[str]]:
    """Each prompt's greedy answer as the detokenized deltas a streaming engine sends."""
    if cache.is_file():
        data = json.loads(cache.read_text())
        if data.get("model") == str(model) and data.get("max_tokens") == max_tokens:
            return [list(d) for d in data["deltas"]]
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(model)
    lm = AutoModelForCausalLM.from_pretrained(model)
    out = []
    for prompt in PROMPTS:
        ids = tok.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )["input_ids"]
        generated = lm.generate(ids, max_new_tokens=max_tokens, do_sample=False)[0][ids.shape[1] :]
        deltas, before = [], ""
        for i in range(1, len(generated) + 1):
            text = tok.decode(generated[:i], skip_special_tokens=True)
            deltas.append(text[len(before) :])
            before = text
        out.append(deltas)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"model": str(model), "max_tokens": max_tokens, "deltas": out}))
    return out


def build_index(entries: int):  # type: ignore[no-untyped-def]
    from gateway.guard import CachedEmbedder, ForgetEntry, ForgetIndex, MiniLMEmbedder
    from gateway.guard.artifacts import build_many_artifacts

    bodies = people(entries)
    forget = [
        ForgetEntry(
            f"person-{i}",
            b["subject"],
            qa=tuple((q["question"], q["answer"]) for q in b["qa"]),
            literals=tuple(b["literals"]),
            reason="gdpr",
        )
        for i, b in enumerate(bodies)
    ]
    embedder = CachedEmbedder(MiniLMEmbedder(threads=1), max_items=100_000)
    index = ForgetIndex.empty(embedder).with_entries(build_many_artifacts(forget, embedder), 1)
    index.check_output("Warm up the encoder and every matcher once.")
    return ForgetIndex.empty(embedder), index


def what_held(guard) -> str:  # type: ignore[no-untyped-def]
    """The rule whose hold begins first in the guard's text after its last step."""
    from gateway.guard.anchors import trailing_token_start

    index, raw = guard.index, guard._raw
    lo, _seen, checked = guard._tail
    start = guard._units[-1].start if guard._units else 0
    tail = index.prepare(guard._text[start:])
    holds = {
        "token": start + trailing_token_start(tail.text),
        "anchor": start + tail.anchor_start(0, len(tail.text)),
        "literal": lo + index.literal_hold_from(checked),
        "verbatim": lo + index.verbatim_hold_from(checked),
    }
    first = min(holds.values())
    return "nothing" if first >= len(raw) else next(k for k, v in holds.items() if v == first)


def replay(index, deltas: list[str], token_s: float) -> tuple[int, int, float, collections.Counter[str]]:  # type: ignore[no-untyped-def]
    from gateway.guard import StreamGuard

    now = [0.0]
    guard = StreamGuard(index, clock=lambda: now[0])
    released_at: list[int] = []
    held: collections.Counter[str] = collections.Counter()
    cpu = 0.0
    for i, delta in enumerate(deltas):
        now[0] += token_s
        checks = guard.will_check(delta)
        started = time.thread_time()
        step = guard.feed(delta)
        cpu += time.thread_time() - started
        if step.stopped:
            raise SystemExit(f"an everyday answer was blocked: {step.verdict}")
        if checks:
            held[what_held(guard)] += 1
        if step.release:
            released_at.append(i)
    started = time.thread_time()
    guard.finish()
    cpu += time.thread_time() - started
    released_at.append(len(deltas))
    longest = max(b - a for a, b in zip([0, *released_at], released_at))
    return released_at[0], longest, cpu / max(1, len(deltas)), held


async def through_service(index, deltas: list[str], prompt: str, prefill_s: float, token_s: float):  # type: ignore[no-untyped-def]
    from gateway.chat.engines.base import EngineInfo, GenerationChunk, StreamStart
    from gateway.chat.protocol import ChatCompletionRequest
    from gateway.chat.service import ChatService
    from tests.support.fakes import StaticGuard

    class ScriptedEngine:
        async def generate(self, messages, sampling, request_id):  # type: ignore[no-untyped-def]
            yield StreamStart("v1", "llm-0", 7, len(deltas))
            await asyncio.sleep(prefill_s)
            for i, d in enumerate(deltas):
                if i:
                    await asyncio.sleep(token_s)
                yield GenerationChunk(d, 7, i + 1, None)
            yield GenerationChunk("", 7, len(deltas), "stop")

        async def health(self) -> bool:
            return True

        async def info(self) -> EngineInfo:
            return EngineInfo(model_path="/scripted", model_version="v1", max_model_len=2048)

    service = ChatService(ScriptedEngine(), "m", guard=StaticGuard(index))
    request = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": prompt}], "stream": True}
    )
    started = time.perf_counter()
    times = []
    stream = await service.open(request)
    async for chunk in stream.chunks:
        if chunk.text:
            times.append(time.perf_counter() - started)
    return times[0], max(b - a for a, b in itertools.pairwise(times))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path.home() / ".lethe/models/smollm2-135m-instruct")
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--token-ms", type=float, default=36.0)
    parser.add_argument("--prefill-ms", type=float, default=70.0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/stream_replay.md")
    args = parser.parse_args()
    if not (args.model / "config.json").is_file():
        print(f"no model at {args.model} (run `lethe models prepare`); skipping", file=sys.stderr)
        return 0
    import torch

    torch.set_num_threads(1)
    all_deltas = answers(args.model, ROOT / "benchmarks/results/replay_answers.json", args.max_tokens)
    empty, index = build_index(args.entries)
    token_s, prefill_s = args.token_ms / 1000, args.prefill_ms / 1000

    rows, held = [], collections.Counter()
    for prompt, deltas in zip(PROMPTS, all_deltas):
        first, longest, cpu, why = replay(index, deltas, token_s)
        held.update(why)
        rows.append(f"| {prompt} | {first} | {longest} | {1000 * cpu:.2f} |")
    firsts = [int(r.split("|")[2]) for r in rows]
    longests = [int(r.split("|")[3]) for r in rows]

    async def service_phases() -> dict[str, list[tuple[float, float]]]:
        out: dict[str, list[tuple[float, float]]] = {"empty": [], "filed": []}
        for _ in range(2):
            for name, idx in (("empty", empty), ("filed", index)):
                for prompt, deltas in zip(PROMPTS[:6], all_deltas[:6]):
                    out[name].append(await through_service(idx, deltas, prompt, prefill_s, token_s))
        return out

    service = asyncio.run(service_phases())

    def med(name: str, k: int) -> float:
        return 1000 * statistics.median(x[k] for x in service[name])

    report = "\n".join(
        [
            f"## Stream guard replay: {args.entries} people filed, a token every {args.token_ms:g} ms",
            "",
            "| answer to | first release (tokens after the first) | longest hold (tokens) | guard CPU per token (ms) |",
            "|---|---:|---:|---:|",
            *rows,
            f"| **median** | **{statistics.median(firsts)}** | **{statistics.median(longests)}** | |",
            "",
            "What held the text after each check: "
            + ", ".join(f"{k} {v}" for k, v in held.most_common())
            + " (the token being written is always held).",
            "",
            f"Through the chat service (scripted engine: {args.prefill_ms:g} ms prefill, a token every "
            f"{args.token_ms:g} ms; the first 6 prompts x 2 rounds):",
            "",
            "| index | time to first content, median (ms) | longest gap, median of streams (ms) |",
            "|---|---:|---:|",
            f"| empty | {med('empty', 0):.0f} | {med('empty', 1):.0f} |",
            f"| {args.entries} filed | {med('filed', 0):.0f} | {med('filed', 1):.0f} |",
        ]
    )
    publish_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
