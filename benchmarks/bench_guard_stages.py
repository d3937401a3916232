"""The guard's cheap first stage against the full check, on every probe set: recall must be 1.00.

    .venv/bin/python benchmarks/bench_guard_stages.py [--sets recall,adversarial,holdout] [--json out.json]

The first stage (`GuardSettings.semantic_anchored_only`, on by default; gateway.guard.anchors) embeds only
the windows that hold an anchor (a word of a subject's name, a fact term of any row, a token a reading could
turn into one). The full check embeds every window. For each probe set, both indexes (same artifacts, same
real embedder: all-MiniLM-L6-v2, one thread, one shared cache) check every leak probe on the whole-text
path (`check_output`) and the stream path (`StreamGuard.guard_all`); a leak counts as caught when its own
entry matched. Reported: the first stage's recall against the full check (leaks the full check catches
that the first stage catches too: must be 1.00), recall against the probe labels, false positives on the
near misses, and windows embedded per check by each.

Sets: `recall` (forget_set.json, leaks/cleans dev + test), `adversarial` (dev + test), `holdout` (the
held-out adversarial split, its index holding every entry).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from reporting import publish_report  # noqa: E402

from gateway.guard import CachedEmbedder, ForgetEntry, ForgetIndex, GuardSettings, MiniLMEmbedder, StreamGuard  # noqa: E402
from gateway.guard.artifacts import build_many_artifacts  # noqa: E402
from tests.gateway.guard.adversarial import clean_probes, index_entries, leak_probes  # noqa: E402
from tests.support.guard_sets import load, load_entries  # noqa: E402


class CountingEmbedder(CachedEmbedder):
    """Counts the windows a check asks to embed, in front of a cache shared by both indexes."""

    def __init__(self, shared: CachedEmbedder) -> None:
        super().__init__(shared, max_items=1)
        self.requested = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        self.requested += len(texts)
        return self.inner.encode(texts)


@dataclass
class ProbeSet:
    name: str
    entries: list[ForgetEntry]
    leaks: list[tuple[str, str]]  # (forget_id, text)
    cleans: list[str]


def probe_sets(names: list[str]) -> list[ProbeSet]:
    sets = []
    if "recall" in names:
        leaks = [(p["forget_id"], p["text"]) for s in ("dev", "test") for p in load(f"leaks_{s}")]
        cleans = [p["text"] for s in ("dev", "test") for p in load(f"cleans_{s}")]
        sets.append(ProbeSet("recall (dev + test)", load_entries("forget_set"), leaks, cleans))
    for name, split in (("adversarial", "both"), ("holdout", "holdout")):
        if name in names:
            leaks = [(p.forget_id, p.text) for p in leak_probes(split)]
            cleans = [p.text for p in clean_probes(split)]
            sets.append(ProbeSet(f"adversarial {split}", index_entries(split), leaks, cleans))
    return sets


def caught(index: ForgetIndex, forget_id: str, text: str) -> tuple[bool, bool]:
    whole = any(m.forget_id == forget_id for m in index.check_output(text).matches)
    streamed = StreamGuard(index).guard_all(text)
    return whole, any(m.forget_id == forget_id for m in streamed.verdict.matches)


def flagged(index: ForgetIndex, text: str) -> bool:
    return index.check_output(text).match or StreamGuard(index).guard_all(text).verdict.match


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="recall,adversarial,holdout")
    parser.add_argument("--json", default=None)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/guard_stages.md"))
    args = parser.parse_args()

    shared = CachedEmbedder(MiniLMEmbedder(threads=1), max_items=500_000)
    lines = [
        "| probe set | leaks | full check catches (whole / stream) | first stage catches | recall vs full "
        "(whole / stream) | FP full / first stage | windows embedded per check full / first stage |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    missed: list[dict[str, str]] = []
    ok = True
    for ps in probe_sets(args.sets.split(",")):
        started = time.perf_counter()
        artifacts = build_many_artifacts(ps.entries, shared)
        counters = {"full": CountingEmbedder(shared), "staged": CountingEmbedder(shared)}
        indexes = {
            "full": ForgetIndex.empty(counters["full"], GuardSettings(semantic_anchored_only=False)),
            "staged": ForgetIndex.empty(counters["staged"]),
        }
        indexes = {k: v.with_entries(artifacts, version=1) for k, v in indexes.items()}
        for c in counters.values():
            c.requested = 0
        hits = {k: [caught(ix, fid, text) for fid, text in ps.leaks] for k, ix in indexes.items()}
        fps = {k: sum(flagged(ix, text) for text in ps.cleans) for k, ix in indexes.items()}
        checks = 2 * (len(ps.leaks) + len(ps.cleans))  # whole-text and stream per probe
        full_whole = [f[0] for f in hits["full"]]
        full_stream = [f[1] for f in hits["full"]]
        kept_whole = sum(1 for f, s in zip(hits["full"], hits["staged"]) if f[0] and s[0])
        kept_stream = sum(1 for f, s in zip(hits["full"], hits["staged"]) if f[1] and s[1])
        for (fid, text), f, s in zip(ps.leaks, hits["full"], hits["staged"]):
            if (f[0] and not s[0]) or (f[1] and not s[1]):
                missed.append({"set": ps.name, "forget_id": fid, "text": text})
        rec_whole = kept_whole / max(1, sum(full_whole))
        rec_stream = kept_stream / max(1, sum(full_stream))
        ok = ok and rec_whole == 1.0 and rec_stream == 1.0
        staged_whole = sum(s[0] for s in hits["staged"])
        staged_stream = sum(s[1] for s in hits["staged"])
        lines.append(
            f"| {ps.name} | {len(ps.leaks)} | {sum(full_whole)} / {sum(full_stream)} | {staged_whole} / "
            f"{staged_stream} | **{rec_whole:.2f} / {rec_stream:.2f}** | {fps['full']} / {fps['staged']} of "
            f"{len(ps.cleans)} | {counters['full'].requested / checks:.2f} / "
            f"{counters['staged'].requested / checks:.2f} |"
        )
        print(f"{ps.name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    lines.append("")
    lines.append(f"first stage recall against the full check 1.00 on every set: {'yes' if ok else 'NO'}")
    for m in missed:
        lines.append(f"- missed by the first stage ({m['set']}, {m['forget_id']}): {m['text'][:160]!r}")
    publish_report("\n".join(lines), args.out)
    if args.json:
        Path(args.json).write_text(json.dumps({"missed": missed, "ok": ok}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
