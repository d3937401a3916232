"""Benchmark: ten forget requests filed one after another, each unlearned by its own job on the previous
job's output; after each job, the leakage of every earlier request on every view, and retain utility.

Forgetting request k must not bring back requests 1..k-1 (or leave them leaking through another view),
and the retain facts must survive k jobs in a row. The subject is SmolLM2-135M-Instruct fine-tuned on
fictitious people; request k is person k's facts; the people after the requests are the retain set.

    python benchmarks/bench_sequential.py --model ~/.lethe/models/smollm2-135m-instruct \\
        --people 20 --facts-per-person 5 --requests 10 --method npo --out benchmarks/results/sequential
    # reduced CPU size (BENCHMARKS.md): per-job views after each job, every view after the tenth
    python benchmarks/bench_sequential.py --people 15 --facts-per-person 5 --requests 10 --seed 3 \
        --train-layers 6 --ft-epochs 10 --ft-lr 5e-4 --ft-target-hit 0.95 --method rmu \
        --views default --final-views all --eval-retain 15 --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.bench_unlearn import (  # noqa: E402
    _finetune_cached,
    _method_name,
    add_finetune_args,
    finetune_config,
    method_overrides,
    parse_views,
)
from benchmarks.leakage_tables import matrix_table, tally  # noqa: E402
from unlearn_jobs.config import parse_assignments  # noqa: E402
from unlearn_jobs.data import Example, ExampleSet, PromptFormat, examples_from_facts, load_fluency  # noqa: E402
from unlearn_jobs.evaluate import Evaluator, Gates, key_term_hit  # noqa: E402
from unlearn_jobs.facts import generate_fact_set  # noqa: E402
from unlearn_jobs.views import ViewScores, get_view  # noqa: E402

GREEDY = "greedy"


def _source(example: Example) -> str:
    return example.source_id


def request_rates(
    examples: Sequence[Example], outcomes: dict[str, list[tuple[int, bool]]], requests: Sequence[str]
) -> dict[str, dict[str, float | None]]:
    """request id -> view (and "greedy") -> leakage rate over that request's units (None: no units)."""
    out: dict[str, dict[str, float | None]] = {r: {} for r in requests}
    for view, rows in outcomes.items():
        counts = tally(examples, rows, key=_source)
        for r in requests:
            leaks, n = counts.get(r, (0, 0))
            out[r][view] = leaks / n if n else None
    return out


def request_counts(
    examples: Sequence[Example], outcomes: dict[str, list[tuple[int, bool]]], requests: Sequence[str]
) -> dict[str, dict[str, list[int]]]:
    """request id -> view (and "greedy") -> [leaks, units] over that request's units."""
    out: dict[str, dict[str, list[int]]] = {r: {} for r in requests}
    for view, rows in outcomes.items():
        counts = tally(examples, rows, key=_source)
        for r in requests:
            out[r][view] = list(counts.get(r, [0, 0]))
    return out


def gate_failures(counts: dict[str, dict[str, list[int]]], gates: Gates, evaluator: Evaluator) -> list[str]:
    """Each (request, view) whose leakage is over the view's gate (`Gates.view_limit`: what guessing
    rarely exceeds for a choice view, the reference plus margin otherwise; greedy:
    `forget_hit_rate_max`)."""
    out = []
    for request, views in counts.items():
        for view, (leaks, n) in views.items():
            if not n:
                continue
            if view == GREEDY:
                limit = gates.forget_hit_rate_max
            else:
                lv = get_view(view)
                chance = lv.chance(evaluator.views.probes[view], evaluator.views.options)
                limit, _ = gates.view_limit(ViewScores(view, lv.kind, n, leaks, chance))
            if leaks / n > limit + 1e-9:
                out.append(f"{request} {view} {leaks}/{n} > {limit:.2f}")
    return out


def leakage_matrices(
    history: Sequence[dict[str, Any]], requests: Sequence[str], views: Sequence[str]
) -> dict[str, list[list[float | None]]]:
    """view -> lower-triangular matrix: row k = after job k, column j = request j (j <= k)."""
    out: dict[str, list[list[float | None]]] = {}
    for view in views:
        matrix = []
        for k, step in enumerate(history, start=1):
            matrix.append([step["leakage"][r].get(view) for r in requests[:k]])
        out[view] = matrix
    return out


def report_markdown(
    history: Sequence[dict[str, Any]], requests: Sequence[str], views: Sequence[str], subject: dict[str, Any]
) -> str:
    lines = [
        "| after job | state | steps | retain hit | retain vs subject | gate reasons |",
        "|---|---|---|---|---|---|",
    ]
    base = subject["retain_hit"] or None
    for k, step in enumerate(history, start=1):
        rel = f"{step['retain_hit'] / base:.2f}" if base else "–"
        reasons = "; ".join(step["gate_reasons"]) or ""
        lines.append(f"| {k} | {step['state']} | {step['steps']} | {step['retain_hit']:.2f} | {rel} | {reasons} |")
    parts = ["\n".join(lines)]
    for view, matrix in leakage_matrices(history, requests, views).items():
        parts += ["", f"Leakage on `{view}` (row: after job k; column: request j):", "", matrix_table(matrix, "k", "j")]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    home = Path(os.environ.get("LETHE_HOME", "~/.lethe")).expanduser()
    ap.add_argument("--model", type=Path, default=home / "models" / "smollm2-135m-instruct")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "sequential")
    ap.add_argument("--people", type=int, default=20)
    ap.add_argument("--facts-per-person", type=int, default=5)
    ap.add_argument("--requests", type=int, default=10, help="forget requests (one person each), filed in order")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--method", default="npo")
    ap.add_argument("--steps", type=int, default=None, help="max unlearning steps per job")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--views", default="default", help="views measured after each job: names, all, default, none")
    ap.add_argument(
        "--final-views",
        default="all",
        help="views measured after the last job (on CPU the expensive ones only there): names, all, default, none",
    )
    ap.add_argument("--gate-views", default="default", help="views the jobs gate on")
    ap.add_argument("--best-of-n", type=int, default=8)
    ap.add_argument("--relearn-steps", type=int, default=10)
    ap.add_argument("--prompt-format", choices=("plain", "chat"), default="plain")
    ap.add_argument("--train-paraphrases", type=int, default=1)
    add_finetune_args(ap)
    ap.add_argument("--train-layers", type=int, default=0, help="fine-tune and unlearn only the top K layers")
    ap.add_argument("--eval-retain", type=int, default=20, help="retain facts sampled for evaluation (0 = all)")
    ap.add_argument("--fluency", type=int, default=0, help="first N fluency sentences (0 = all)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("LETHE_BENCH_THREADS", "2")))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--eval-dtype", choices=("auto", "float32", "bfloat16"), default="auto")
    ap.add_argument("--eval-batch", type=int, default=64, help="prompts per generation batch")
    ap.add_argument(
        "--regate",
        action="store_true",
        help="no jobs: re-check the last job's per-request figures in --out/results.json against today's gates",
    )
    args = ap.parse_args(argv)

    if not (args.model / "config.json").is_file():
        print(f"no model at {args.model} (run `lethe models prepare`); skipping", file=sys.stderr)
        return 0
    if not 0 < args.requests < args.people:
        raise SystemExit("--requests must be in 1..people-1 (the people after the requests are the retain set)")

    import torch

    from unlearn_jobs.model import generation_copy, greedy_generate, load_model, pick_device
    from unlearn_jobs.runner import JobSpec, resolve_eval_dtype, run_job

    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    began = time.monotonic()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    facts = generate_fact_set(args.people, args.facts_per_person, seed=args.seed)
    request_people = [p.person_id for p in facts.people[: args.requests]]
    forget_all = examples_from_facts(facts.subset(request_people).facts)
    retain = examples_from_facts(facts.subset(p.person_id for p in facts.people[args.requests :]).facts)
    fmt = PromptFormat(args.prompt_format)
    top = tuple(range(-args.train_layers, 0)) if args.train_layers else None

    def trained_on(ex: ExampleSet) -> ExampleSet:
        k = args.train_paraphrases
        return ExampleSet(tuple(dataclasses.replace(e, paraphrases=e.paraphrases[:k]) for e in ex))

    ft_cfg = finetune_config(args, top)
    subject_dir = out / "subject"
    _finetune_cached(args.model, subject_dir, trained_on(forget_all.concat(retain)), ft_cfg, fmt, "subject", device)
    eval_retain = (
        retain
        if not args.eval_retain
        else ExampleSet(retain.examples[:: max(1, len(retain) // args.eval_retain)][: args.eval_retain])
    )
    fluency = load_fluency()[: args.fluency or None]
    views = parse_views(args.views)
    final_views = parse_views(args.final_views)
    gates = Gates(
        views=parse_views(args.gate_views), view_best_of_n=args.best_of_n, view_relearn_steps=args.relearn_steps
    )
    _, tokenizer = load_model(subject_dir)
    eval_dtype = resolve_eval_dtype(args.eval_dtype, device)
    evaluators: dict[int, Evaluator] = {}

    def evaluator_upto(k: int) -> Evaluator:
        """One evaluator over the facts of requests 1..k (each figure is split by request afterwards);
        the relearn view trains on the whole retain set, as the jobs' own does."""
        if k not in evaluators:
            evaluators[k] = Evaluator(
                tokenizer,
                examples_from_facts(facts.subset(request_people[:k]).facts),
                eval_retain,
                fluency,
                fmt=fmt,
                batch_size=args.eval_batch,
                views=tuple(dict.fromkeys((*views, *final_views))),
                view_options=gates.view_options(retain),
                generation_dtype=eval_dtype,
            )
        return evaluators[k]

    def measure(path: Path, names: Sequence[str], upto: int) -> dict[str, Any]:
        """Greedy questions and the views `names` over requests 1..`upto` (the later ones are not filed
        yet), and the retain facts kept."""
        model, _ = load_model(path, device)
        generator = generation_copy(model, eval_dtype)
        evaluator = evaluator_upto(upto)
        examples = evaluator.views.examples

        def greedy(examples: ExampleSet) -> list[tuple[int, bool]]:
            ids = [fmt.prompt_ids(tokenizer, e.prompt, e.style) for e in examples]
            outs = greedy_generate(
                generator, tokenizer, ids, max_new_tokens=evaluator.max_new_tokens, batch_size=args.eval_batch
            )
            return [(i, key_term_hit(o, e.key_terms)) for i, (e, o) in enumerate(zip(examples, outs))]

        outcomes = {GREEDY: greedy(examples)}
        if names:
            for name, rows in evaluator.views.outcomes(evaluator.asker(model, generator), only=names).items():
                outcomes[name] = [(o.example, o.leaked) for o in rows]
        kept = greedy(eval_retain)
        filed = request_people[:upto]
        return {
            "leakage": request_rates(examples.examples, outcomes, filed),
            "counts": request_counts(examples.examples, outcomes, filed),
            "retain_hit": sum(h for _, h in kept) / len(kept) if kept else 0.0,
        }

    if args.regate:
        last = json.loads((out / "results.json").read_text())["history"][-1]
        failures = gate_failures(last["counts"], gates, evaluator_upto(len(request_people)))
        print("After the last job, requests over their gate on a view: " + ("; ".join(failures) or "none"))
        return 0
    # Before any job: every request on the per-job views (the subject knows them all).
    subject = measure(subject_dir, views, len(request_people))
    print(f"[subject] retain hit {subject['retain_hit']:.2f}", flush=True)
    columns = [GREEDY, *dict.fromkeys((*views, *final_views))]
    overrides = method_overrides(args.method, top, parse_assignments(args.overrides), args.steps)
    current_dir, current_version = subject_dir, "subject"
    history: list[dict[str, Any]] = []
    for k, person in enumerate(request_people, start=1):
        forget_k = examples_from_facts(facts.facts_of(person))
        t = time.monotonic()
        res = run_job(
            JobSpec(
                base_model_dir=str(current_dir),
                method=_method_name(args.method),
                forget=forget_k,
                retain=retain,
                versions_dir=str(out / "versions"),
                overrides=overrides,
                gates=gates,
                parent_version=current_version,
                prompt_format=fmt.kind,
                fluency=fluency,
                eval_batch_size=args.eval_batch,
                eval_retain=eval_retain,
                device=str(device),
                guard_score=False,
                version_id=f"seq-{k:02d}",
            )
        )
        if res.version_dir and res.version_id:
            current_dir, current_version = Path(res.version_dir), res.version_id
        step = {
            "job": k,
            "request": person,
            "state": res.state.value,
            "steps": res.steps,
            "gate_reasons": list(res.gate_reasons),
            "reason": res.reason,
            "wall_s": round(time.monotonic() - t, 1),
            "version": current_version,
            "phases": {name: round(v, 1) for name, v in res.phases.items()},
            **measure(current_dir, columns[1:] if k == len(request_people) else views, k),
        }
        history.append(step)
        print(
            f"[job {k}] {res.state.value} in {step['wall_s']}s, retain hit {step['retain_hit']:.2f}, "
            f"request {k} greedy leakage {step['leakage'][person][GREEDY]}",
            flush=True,
        )

    failures = gate_failures(history[-1]["counts"], gates, evaluator_upto(len(history))) if history else []
    text = report_markdown(history, request_people, columns, subject)
    text += "\n\nAfter the last job, requests over their gate on a view: " + (
        "; ".join(failures) if failures else "none"
    )
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "args": {k: str(v) for k, v in vars(args).items()},
        "requests": request_people,
        "views": columns,
        "overrides": overrides,
        "subject": subject,
        "history": history,
        "matrices": leakage_matrices(history, request_people, columns),
        "final_gate_failures": failures,
        "device": str(device),
        "total_wall_s": time.monotonic() - began,
    }
    (out / "results.json").write_text(json.dumps(report, indent=1, default=str))
    (out / "results.md").write_text(text + "\n")
    print(text)
    print(f"total {report['total_wall_s']:.0f}s; results in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
