"""Guard recall on forgotten content in disguise, and false positives on near misses (the adversarial probe sets).

    .venv/bin/python benchmarks/bench_guard_adversarial.py [--split dev|test|both|holdout] [--show-misses] [--no-stream]

Builds a forget index over tests/gateway/guard/data/adversarial_forget_set.json with the real embedder
(all-MiniLM-L6-v2, one thread, a window cache) and checks every probe of the split twice: the whole-text check
(`ForgetIndex.check_output`: caught when it names the probe's entry) and the stream path every response takes
(`StreamGuard.guard_all`: caught when it stopped or redacted on that entry). A near miss counts as a false
positive on any match. Regenerate the sets with tests/gateway/guard/data/make_adversarial_sets.py; tune on
dev, report test. Output: markdown on stdout and in benchmarks/results/guard_adversarial.md (`--json` adds
every probe's outcome).

`--split holdout` is the held-out split, for one run at the end, never for tuning: its index holds the dev and
test entries and adversarial_forget_set_holdout.json together, and its report goes to
benchmarks/results/guard_adversarial_holdout.md unless --out says otherwise. `both` is dev and test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from reporting import publish_report  # noqa: E402

from gateway.guard import CachedEmbedder, MiniLMEmbedder  # noqa: E402
from tests.gateway.guard.adversarial import (  # noqa: E402
    HOLDOUT,
    AdversarialReport,
    CleanProbe,
    LeakProbe,
    build_index,
    clean_probes,
    evaluate,
    index_entries,
    leak_probes,
)


def _pct(rate: float) -> str:
    return f"{rate:.1%}"


def leak_table(report: AdversarialReport, stream: bool) -> list[str]:
    full = report.recall_by_category()
    streamed = report.recall_by_category(stream=True) if stream else {}
    header = "| category | n | recall | misses |" + (" stream recall | stream misses |" if stream else "")
    lines = [header, "|---|---:|---:|---:|" + ("---:|---:|" if stream else "")]
    for category, rate in full.items():
        row = f"| {category} | {rate.n} | {_pct(rate.rate)} | {rate.n - rate.hits} |"
        if stream:
            s = streamed[category]
            row += f" {_pct(s.rate)} | {s.n - s.hits} |"
        lines.append(row)
    total = report.recall()
    row = f"| **all** | {total.n} | **{_pct(total.rate)}** | {total.n - total.hits} |"
    if stream:
        s = report.recall(stream=True)
        row += f" **{_pct(s.rate)}** | {s.n - s.hits} |"
    return [*lines, row]


def clean_table(report: AdversarialReport, stream: bool) -> list[str]:
    full = report.fp_by_category()
    streamed = report.fp_by_category(stream=True) if stream else {}
    header = "| near-miss category | n | flagged | FP rate |" + (" stream flagged |" if stream else "")
    lines = [header, "|---|---:|---:|---:|" + ("---:|" if stream else "")]
    for category, rate in full.items():
        row = f"| {category} | {rate.n} | {rate.hits} | {_pct(rate.rate)} |"
        if stream:
            row += f" {streamed[category].hits} |"
        lines.append(row)
    total = report.fp()
    row = f"| **all** | {total.n} | {total.hits} | **{_pct(total.rate)}** |"
    if stream:
        row += f" {report.fp(stream=True).hits} |"
    return [*lines, row]


def split_summary(reports: dict[str, AdversarialReport], stream: bool) -> list[str]:
    lines = [
        "| split | leaks | recall | stream recall | near misses | FP rate | stream FP rate |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for split, r in reports.items():
        sr = _pct(r.recall(stream=True).rate) if stream else "-"
        sf = _pct(r.fp(stream=True).rate) if stream else "-"
        lines.append(
            f"| {split} | {r.recall().n} | {_pct(r.recall().rate)} | {sr} | {r.fp().n} | {_pct(r.fp().rate)} | {sf} |"
        )
    return lines


def _item(p: LeakProbe | CleanProbe) -> str:
    return f"- `{p.category}/{p.variant}` {p.forget_id or '-'}: {json.dumps(p.text, ensure_ascii=False)}"


def misses_section(report: AdversarialReport, stream: bool) -> list[str]:
    missed = report.misses()
    lines = ["", "### Missed leaks", "", *(_item(p) for p in missed)]
    if stream:
        lines += ["", "### Missed by the stream path only", ""]
        lines += [_item(p) for p in report.misses(stream=True) if p not in missed]
    flagged = report.false_positives()
    if stream:
        flagged += [p for p in report.false_positives(stream=True) if p not in flagged]
    return [*lines, "", "### Flagged near misses (entry they are near)", "", *(_item(p) for p in flagged)]


def _revision() -> str:
    """The commit the guard comes from, and whether gateway/ has uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "gateway"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return "an unknown revision (no git)"
    if head.returncode != 0:
        return f"an unknown revision ({ROOT} is not a git checkout)"
    return head.stdout.strip() + (" + uncommitted changes under gateway/" if dirty.stdout.strip() else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=["dev", "test", "both", HOLDOUT], default="both")
    parser.add_argument("--show-misses", action="store_true", help="list missed leaks and flagged near misses")
    parser.add_argument("--no-stream", action="store_true", help="check with check_output only, not the stream path")
    parser.add_argument("--out", default=None, help="default: benchmarks/results/guard_adversarial[_holdout].md")
    parser.add_argument("--json", type=Path, default=None, help="also write every probe's outcome here")
    args = parser.parse_args()
    stream = not args.no_stream
    if args.out is None:
        suffix = "_holdout" if args.split == HOLDOUT else ""
        args.out = str(ROOT / f"benchmarks/results/guard_adversarial{suffix}.md")

    import torch

    torch.set_num_threads(1)
    model = MiniLMEmbedder(threads=1)
    embedder = CachedEmbedder(model, max_items=50_000)
    started = time.perf_counter()
    entries = index_entries(args.split)  # holdout: dev + test + holdout entries, as production holds them all
    index = build_index(embedder, entries)
    built = time.perf_counter() - started
    splits = ["dev", "test"] if args.split == "both" else [args.split]
    reports = {}
    for split in splits:
        t = time.perf_counter()
        reports[split] = evaluate(index, leak_probes(split), clean_probes(split), stream=stream)
        print(f"{split}: evaluated in {time.perf_counter() - t:.1f}s", file=sys.stderr, flush=True)
    report = AdversarialReport(
        tuple(r for rep in reports.values() for r in rep.leaks),
        tuple(r for rep in reports.values() for r in rep.cleans),
    )

    lines = [
        f"## Guard against disguised leaks: split {args.split}",
        "",
        f"Guard at {_revision()}; {len(entries)} forget entries (index built in {built:.1f} s), "
        f"embedder {model.name} ({model.backend}, 1 thread). Recall: the probe's "
        "entry is among the matches; stream: `StreamGuard.guard_all` stopped or redacted on it. FP: any match.",
        "",
        *split_summary(reports, stream),
        "",
        "### Leaks by category",
        "",
        *leak_table(report, stream),
        "",
        "### Near misses by category",
        "",
        *clean_table(report, stream),
    ]
    if args.show_misses:
        lines += misses_section(report, stream)
    publish_report("\n".join(lines), args.out)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"leaks": [asdict(r) for r in report.leaks], "cleans": [asdict(r) for r in report.cleans]},
                indent=1,
                ensure_ascii=False,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
