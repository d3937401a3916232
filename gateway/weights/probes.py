"""Leakage probes: how much of the forget set the raw weights still say, per weight version.

A probe run sends every forget request's questions (and text prefixes) to the LLM replicas
directly, bypassing the guard, greedy. An answer *leaks* when it carries all the key terms of the
forgotten answer (the unlearning evaluation's key-term hit: the weights still know the fact); the
guard's own matchers score every answer too (`guard_hit_ratio`: what the guard would have to stop,
made-up answers about a forgotten subject included). The same run scores retain prompts (the configured retain file, else the base
model's own answers to neutral questions, recorded the first time the base version is probed).
Results go to `GET /v1/admin/leakage` and to `lethe_raw_leakage_ratio{version}` /
`lethe_retain_score{version}`. A report holds counts, ratios and the ids of leaking requests: the
probe prompts and the raw answers are scored in memory and never stored, logged or returned.

The run also asks the configured leakage views (`probes.views`, unlearn_jobs.views): the same forget
requests as held-out rewordings, fill-in-the-blank, multiple choice, yes/no, JSON, other languages.
Only views measurable from one greedy answer qualify (choice views parse the letter or yes/no the
model writes). Each view's counts per version go to the report (`by_version[v]["views"]`, the ids of
requests that leaked through it in `leaking_forget_ids_by_view`) and to
`lethe_raw_leakage_view_ratio{version, view}`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from gateway.chat.engines.base import GenerationChunk, ReplicaSwappingError, SamplingRequest
from gateway.errors import unwrap_remote_error
from gateway.guard.embedder import Embedder
from gateway.guard.index import ForgetIndex
from gateway.home import write_private
from gateway.ledger import ForgetStatus, Ledger
from gateway.observability import metrics
from unlearn_jobs.data import (
    Example,
    ExampleSet,
    examples_from_request,
    extract_key_terms,
    load_retain_file,
    neutral_questions,
)
from unlearn_jobs.evaluate import key_term_hit
from unlearn_jobs.views import ViewOptions, get_view

# What a probe run asks besides the plain questions, by default: 7 more prompts per forget
# question (held-out rewordings x2, blank, multiple choice, yes/no pair, JSON). Other languages (3
# prompts each) and indirect questions (which need a FactSet's structure) are opt-in.
# (`ProbesConfig.views` has the same default.)
PROBE_VIEWS: tuple[str, ...] = ("paraphrase_heldout", "fill_blank", "multiple_choice", "yes_no", "json")


def probe_views(names: Sequence[str]) -> tuple[str, ...]:
    """Checked view names: each must be measurable from one greedy answer per prompt."""
    out = []
    for name in names:
        if not get_view(name).generative:  # raises for an unknown view
            raise ValueError(f"leakage view {name!r} needs the weights (sampling, a model copy): jobs only")
        out.append(name)
    return tuple(dict.fromkeys(out))


log = logging.getLogger(__name__)

PROBED_STATUSES = (ForgetStatus.ENFORCED, ForgetStatus.UNLEARNING, ForgetStatus.UNLEARNED)


class RawLLM(Protocol):
    """The LLM deployment, called without the guard (an `LLMHandle` in production)."""

    def generate(
        self, messages: list[dict[str, str]], sampling: SamplingRequest, request_id: str
    ) -> AsyncIterator[Any]: ...


class LeakageProber:
    """One probe run at a time; the latest report is kept in memory and in `<state_dir>/latest.json`.

    >>> prober = LeakageProber(ledger, llm, embedder_factory, state_dir=home / "probes")
    >>> report = await prober.run(reason="after swap")
    """

    def __init__(
        self,
        ledger: Ledger,
        llm: RawLLM,
        embedder_factory: Callable[[], Embedder],
        *,
        state_dir: Path,
        base_version: str,
        retain_file: str | None = None,
        max_tokens: int = 48,
        concurrency: int = 8,
        on_report: Callable[[dict[str, Any]], None] | None = None,
        views: Sequence[str] = PROBE_VIEWS,
    ) -> None:
        self._ledger = ledger
        self._llm = llm
        self._embedder_factory = embedder_factory
        self._embedder: Embedder | None = None
        self._state_dir = Path(state_dir)
        self._base_version = base_version
        self._retain_file = retain_file
        self._max_tokens = max_tokens
        self._concurrency = concurrency
        self._on_report = on_report
        self._views = probe_views(views)
        self._lock = asyncio.Lock()
        self.latest: dict[str, Any] | None = self._load_latest()

    # --- state -------------------------------------------------------------------------------

    def _load_latest(self) -> dict[str, Any] | None:
        try:
            latest: dict[str, Any] = json.loads((self._state_dir / "latest.json").read_text())
        except (OSError, ValueError):
            return None
        return latest

    def _save(self, name: str, value: Any) -> None:
        # Reports hold counts, ratios and forget ids only (never a probe prompt or answer); private all the same.
        write_private(self._state_dir / name, json.dumps(value, indent=2).encode())

    @property
    def running(self) -> bool:
        return self._lock.locked()

    # --- a run -------------------------------------------------------------------------------

    async def run(self, *, reason: str = "manual") -> dict[str, Any]:
        async with self._lock:
            started = time.monotonic()
            forget = await asyncio.to_thread(self._forget_examples)
            outputs = await self._generate([(e.prompt, e.style) for e in forget])
            index = await asyncio.to_thread(self._index)
            leaks = []
            for example, (version, text) in zip(forget, outputs):
                guard_hit = bool(text.strip()) and index is not None and index.check_output(text).match
                key_hit = key_term_hit(text, example.key_terms)
                leaks.append((example, version, guard_hit, key_hit))
            retain = await self._retain_scores()
            views = await self._view_scores(forget)
            report = self._report(leaks, retain, time.monotonic() - started, reason, views)
            self.latest = report
            await asyncio.to_thread(self._save, "latest.json", report)
            if self._on_report is not None:
                try:
                    self._on_report(report)
                except Exception:  # metrics must never fail a probe run
                    log.exception("probe report hook failed")
            return report

    def _forget_examples(self) -> list[Example]:
        examples: list[Example] = []
        for status in PROBED_STATUSES:
            offset = 0
            while True:
                page = self._ledger.list_forgets(status, limit=1000, offset=offset)
                for record in page:
                    if record.shredded_at is not None:
                        continue  # content destroyed: nothing left to ask (it was clean when shredded)
                    try:
                        examples.extend(examples_from_request(record.body(), record.id))
                    except ValueError:
                        continue  # literals only: nothing to ask the model
                if len(page) < 1000:
                    break
                offset += len(page)
        return examples

    def _index(self) -> ForgetIndex | None:
        snapshot = self._ledger.snapshot()
        if not snapshot.artifacts:
            return None
        if self._embedder is None:
            self._embedder = self._embedder_factory()
        # The artifacts' terms are hashed with the deployment's key: the index must use the same one.
        index = ForgetIndex.empty(self._embedder, hasher=self._ledger.guard_hasher())
        return index.with_entries(list(snapshot.artifacts), snapshot.version)

    async def _generate(self, prompts: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """(version, text) per prompt, greedy, straight from the LLM replicas."""
        gate = asyncio.Semaphore(self._concurrency)

        async def one(prompt: str) -> tuple[str, str]:
            async with gate:
                return await self._ask(prompt)

        return list(await asyncio.gather(*(one(p) for p, _ in prompts)))

    async def _ask(self, prompt: str) -> tuple[str, str]:
        sampling = SamplingRequest(max_tokens=self._max_tokens, temperature=0.0)
        for _attempt in range(600):
            version, parts = "", []
            try:
                async for item in self._llm.generate(
                    [{"role": "user", "content": prompt}], sampling, f"probe-{uuid.uuid4().hex}"
                ):
                    if isinstance(item, GenerationChunk):
                        parts.append(item.text)
                    else:
                        version = item.model_version
                return version, "".join(parts)
            except Exception as exc:  # a replica in a swap refuses: ask again shortly
                if not isinstance(unwrap_remote_error(exc), ReplicaSwappingError):
                    raise
                await asyncio.sleep(0.1)
        raise RuntimeError("the LLM replicas kept refusing probe requests (swapping)")

    async def _view_scores(
        self, forget: list[Example]
    ) -> dict[str, dict[str, tuple[int, int, float | None, set[str]]]]:
        """view -> version -> (units, leaks, chance, ids of requests that leaked), from greedy answers."""
        examples = ExampleSet(tuple(forget))
        options = ViewOptions(choice_scoring="generate")
        out: dict[str, dict[str, tuple[int, int, float | None, set[str]]]] = {}
        for name in self._views:
            view = get_view(name)
            probes = view.probes(examples, options)
            if not probes:
                continue
            answers = await self._generate([(p.prompt, "qa") for p in probes])
            by_version: dict[str, list[int]] = {}
            for i, (version, _) in enumerate(answers):
                by_version.setdefault(version, []).append(i)
            rows = {}
            for version, idx in by_version.items():
                chosen = [probes[i] for i in idx]
                outcomes = view.outcomes_from_outputs(chosen, [answers[i][1] for i in idx])
                leaked = {forget[o.example].source_id for o in outcomes if o.leaked}
                chance = view.chance(chosen, options) if outcomes else None
                rows[version] = (len(outcomes), sum(o.leaked for o in outcomes), chance, leaked)
            out[name] = rows
        return out

    async def _retain_scores(self) -> dict[str, Any]:
        """Key-term hit rate on the retain set, by the version that answered."""
        retain, source = await asyncio.to_thread(self._retain_set)
        if retain is None:
            return {"source": source, "by_version": {}}
        outputs = await self._generate([(e.prompt, e.style) for e in retain])
        if source == "neutral questions (recording the base model's answers)":
            reference = [{"prompt": e.prompt, "answer": text} for e, (_, text) in zip(retain, outputs) if text.strip()]
            await asyncio.to_thread(self._save, "retain_reference.json", reference)
            # The reference is this run's own answers: the base version scores 1 by definition.
            return {
                "source": "neutral questions, base model's answers recorded by this run",
                "by_version": {v: 1.0 for v, _ in outputs if v},
            }
        hits: dict[str, list[bool]] = {}
        for example, (version, text) in zip(retain, outputs):
            hits.setdefault(version, []).append(key_term_hit(text, example.key_terms))
        return {"source": source, "by_version": {v: sum(h) / len(h) for v, h in hits.items() if h}}

    def _retain_set(self) -> tuple[list[Example] | None, str]:
        if self._retain_file:
            return list(load_retain_file(self._retain_file)), f"retain file {self._retain_file}"
        try:
            reference = json.loads((self._state_dir / "retain_reference.json").read_text())
            examples = [
                Example(f"self/{i}", "self", r["prompt"], r["answer"], extract_key_terms(r["prompt"], r["answer"]))
                for i, r in enumerate(reference)
            ]
            return [
                e for e in examples if e.key_terms
            ], "neutral questions, scored against the base model's recorded answers"
        except (OSError, ValueError, KeyError):
            pass
        serving = self._ledger.serving_version()
        if serving is None or serving.id == self._base_version:
            # First run on the base weights: its answers become the retain reference.
            return (
                [Example(f"self/{i}", "self", q, "", ()) for i, q in enumerate(neutral_questions())],
                "neutral questions (recording the base model's answers)",
            )
        return None, "none: configure probes.retain_file (no base-model reference was recorded)"

    def _report(
        self,
        leaks: list[tuple[Any, str, bool, bool]],
        retain: dict[str, Any],
        seconds: float,
        reason: str,
        views: dict[str, dict[str, tuple[int, int, float | None, set[str]]]] | None = None,
    ) -> dict[str, Any]:
        by_version: dict[str, dict[str, Any]] = {}
        for _example, version, guard_hit, key_hit in leaks:
            row = by_version.setdefault(version, {"prompts": 0, "guard_hits": 0, "key_term_hits": 0})
            row["prompts"] += 1
            row["guard_hits"] += int(guard_hit)
            row["key_term_hits"] += int(key_hit)
        for version, row in by_version.items():
            # What the weights still know: all key terms of a forgotten answer came back. The guard
            # also stops made-up answers about a forgotten subject (a model that never knew the
            # person scores high there), so its rate is reported beside, not as, the leakage.
            row["leakage_ratio"] = row["key_term_hits"] / row["prompts"]
            row["guard_hit_ratio"] = row["guard_hits"] / row["prompts"]
            row["retain_score"] = retain["by_version"].get(version)
        by_view: dict[str, set[str]] = {}
        for name, rows in (views or {}).items():
            for version, (n, hits, chance, leaked) in rows.items():
                row = by_version.setdefault(version, {"prompts": 0, "guard_hits": 0, "key_term_hits": 0})
                row.setdefault("views", {})[name] = {
                    "n": n,
                    "leaks": hits,
                    "rate": hits / n if n else 0.0,
                    "chance": chance,
                }
                by_view.setdefault(name, set()).update(leaked)
        versions = Counter(v for _, v, _, _ in leaks) or Counter(retain["by_version"])
        leaking = Counter(e.source_id for e, _, _, k in leaks if k)
        return {
            "object": "leakage.report",
            "at": datetime.now(UTC).isoformat(),
            "reason": reason,
            "duration_s": round(seconds, 2),
            "version": versions.most_common(1)[0][0] if versions else None,
            "forget_requests": len({e.source_id for e, _, _, _ in leaks}),
            "forget_prompts": len(leaks),
            "by_version": by_version,
            "retain_source": retain["source"],
            "leaking_forget_ids": sorted(leaking),
            "views": list(self._views),
            "leaking_forget_ids_by_view": {name: sorted(ids) for name, ids in by_view.items()},
        }


def export_report(report: dict[str, Any]) -> None:
    """Set the leakage and retain gauges of every version the run measured."""
    for version, row in report.get("by_version", {}).items():
        if version:
            if "leakage_ratio" in row:
                metrics.record_leakage(version, row["leakage_ratio"], row.get("retain_score"))
            rates = {name: v["rate"] for name, v in (row.get("views") or {}).items() if v.get("n")}
            if rates:
                metrics.record_view_leakage(version, rates)
