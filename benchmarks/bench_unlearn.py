"""Benchmark: unlearning methods on SmolLM2-135M-Instruct fine-tuned on fictitious people, next to two anchors.

Anchors, measured in the same run: the fine-tuned subject model before unlearning, and a model
fine-tuned from the same base on the retain people only (exact unlearning by retraining).

Every model is also scored on the leakage views (unlearn_jobs/views: held-out paraphrases, formats,
languages, indirect questions, best of N, quantized and relearned copies; `--views`), in a table per
view, and broken down per attribute (names, numbers, places, dates: which forget facts leak, which
retain facts are lost). Jobs gate on `--gate-views` (the job default) and report every view.
A reduced CPU run: --people 10 --facts-per-person 3 --views fill_blank,multiple_choice,yes_no

    python benchmarks/bench_unlearn.py --model ~/.lethe/models/smollm2-135m-instruct \
        --people 20 --facts-per-person 5 --forget-frac 0.1 --out benchmarks/results/run1

On two cores, fine-tune the two anchors side by side first (the same arguments plus
`--finetune-only subject` in one process and `--finetune-only retrain` in another); the full run
then reuses both. A job's "wall s" leaves out the views it measures for this report only.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
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

from benchmarks.leakage_tables import breakdown_table, tally, targets_table, views_table  # noqa: E402
from gateway.jobs.guard_scorer import GatewayGuardScorer  # noqa: E402
from unlearn_jobs.config import parse_assignments  # noqa: E402
from unlearn_jobs.data import ExampleSet, PromptFormat, examples_from_facts, load_fluency  # noqa: E402
from unlearn_jobs.evaluate import Evaluator, Gates, Metrics, key_term_hit  # noqa: E402
from unlearn_jobs.facts import generate_fact_set  # noqa: E402
from unlearn_jobs.guard_score import entries_from_bodies  # noqa: E402
from unlearn_jobs.views import ALL_VIEWS, DEFAULT_VIEWS  # noqa: E402

# Per-method settings for a 135M model; each is a job override, so the CLI's --set can change them.
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "grad_diff": {
        "lr": 5e-5,
        "steps": 20,
        "check_every": 2,
        "batch_size": 4,
        "retain_batch_size": 4,
        "repair_steps": 3,
    },
    "grad_diff_kl": {
        "lr": 5e-5,
        "steps": 20,
        "check_every": 2,
        "batch_size": 4,
        "retain_batch_size": 4,
        "retain_loss": "kl",
        "repair_steps": 3,
    },
    # npo, simnpo and edit: the settings chosen on issue 17's tuning split (20 people x 3 facts, seed 0,
    # every view; BENCHMARKS.md "a second reduced CPU run"). rmu runs its registry defaults (the same
    # tuning moved them there). Larger runs with other seeds are the held-out check.
    "npo": {
        "lr": 1e-4,
        "steps": 20,
        "check_every": 2,
        "batch_size": 4,
        "retain_batch_size": 4,
        "retain_loss": "kl",
        "alpha": 10.0,
        "repair_steps": 10,
    },
    "simnpo": {"lr": 5e-5, "steps": 40, "early_stop": False},
    # Run 4 (40 x 5, all layers): 60 unbounded steps failed the perplexity gate; 20 bounded ones passed
    # all. The tuning split's views wanted 40 (20 left indirect and yes/no above the anchor).
    "edit": {"lr": 3e-4, "steps": 40, "max_delta": 0.005, "batch_size": 4, "retain_batch_size": 4},
}


RETRAIN_ROW = "retrain on retain only"


def _method_name(variant: str) -> str:
    return "grad_diff" if variant.startswith("grad_diff") else variant.split(":")[0]


def method_overrides(
    variant: str, top: tuple[int, ...] | None, given: dict[str, Any], steps: int | None = None
) -> dict[str, Any]:
    """A benchmark job's overrides: `METHOD_DEFAULTS`, the fine-tuned layers (`--train-layers`), then
    the command line's own (`given`, `--steps`)."""
    defaults = METHOD_DEFAULTS.get(variant, METHOD_DEFAULTS.get(_method_name(variant), {}))
    overrides = {**defaults, **({"layers": top} if top else {}), **given}
    if top and _method_name(variant) == "rmu" and "layer" not in given:
        overrides["layer"] = -2  # steer a layer the job updates (the top one is read after the final norm)
    if steps:
        overrides["steps"] = steps
    return overrides


def _row(name: str, m: Metrics, base: Metrics | None, wall_s: float | None, extra: dict[str, Any]) -> dict[str, Any]:
    para = m.forget.paraphrases
    rpara = m.retain.paraphrases
    return {
        "name": name,
        "forget_hit_q": m.forget.questions.hit_rate,
        "forget_hit_p": para.hit_rate if para else None,
        "forget_rouge_q": m.forget.questions.rouge_l,
        "forget_rouge_p": para.rouge_l if para else None,
        "retain_hit_q": m.retain.questions.hit_rate,
        "retain_hit_p": rpara.hit_rate if rpara else None,
        "retain_hit": m.retain.pooled_hit_rate,
        "retain_rel": (m.retain.pooled_hit_rate / base.retain.pooled_hit_rate)
        if base and base.retain.pooled_hit_rate
        else None,
        "retain_rouge_q": m.retain.questions.rouge_l,
        "perplexity": m.perplexity,
        "guard_forget": m.forget.pooled_guard,
        "guard_retain": m.retain.pooled_guard,
        "wall_s": wall_s,
        "views": {v.view: v.to_dict() for v in m.views},
        **extra,
    }


def _stored_rows(paths: Sequence[Path]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The first stored results.json and the rows of all: every row of the first, the job rows of the
    others (whose anchors, from the same cached fine-tunes, the first already holds)."""
    first: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    for k, path in enumerate(paths):
        stored = json.loads(path.read_text())
        first = first or stored
        rows += [r for r in stored.get("rows", ()) if k == 0 or r.get("state") not in (None, "anchor")]
    return first, rows


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    cols = [
        ("name", "model"),
        ("forget_hit_q", "forget hit (Q)"),
        ("forget_hit_p", "forget hit (para)"),
        ("forget_rouge_q", "forget ROUGE-L (Q)"),
        ("forget_rouge_p", "forget ROUGE-L (para)"),
        ("retain_hit_q", "retain hit (Q)"),
        ("retain_hit_p", "retain hit (para)"),
        ("retain_rel", "retain vs subject"),
        ("perplexity", "ppl"),
        ("guard_forget", "guard hit forget"),
        ("guard_retain", "guard hit retain"),
        ("wall_s", "wall s"),
        ("baseline_s", "of which baseline s"),
        ("train_s", "of which steps s"),
        ("eval_s", "of which evaluation s"),
        ("vs_retrain", "wall vs retrain"),
        ("state", "job"),
        ("steps", "steps"),
    ]
    lines = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(k)) for k, _ in cols) + " |")
    return "\n".join(lines)


def parse_views(text: str) -> tuple[str, ...]:
    """`--views`/`--gate-views`: comma-separated names, `all`, `default` or `none`."""
    if text.strip() in ("", "none"):
        return ()
    if text.strip() == "all":
        return ALL_VIEWS
    if text.strip() == "default":
        return DEFAULT_VIEWS
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    unknown = [v for v in names if v not in ALL_VIEWS]
    if unknown:
        raise SystemExit(f"unknown view(s) {unknown}; available: {', '.join(ALL_VIEWS)}")
    return names


def attribute_rows(evaluator: Evaluator, model: Any, forget: ExampleSet, retain: ExampleSet) -> dict[str, Any]:
    """Per attribute: forget questions answered (greedy), each view's leaks, retain questions kept."""
    from unlearn_jobs.model import greedy_generate

    def greedy(examples: ExampleSet) -> list[tuple[int, bool]]:
        ids = [evaluator.fmt.prompt_ids(evaluator.tokenizer, e.prompt, e.style) for e in examples]
        outs = greedy_generate(
            model, evaluator.tokenizer, ids, max_new_tokens=evaluator.max_new_tokens, batch_size=evaluator.batch_size
        )
        return [(i, key_term_hit(o, e.key_terms)) for i, (e, o) in enumerate(zip(examples, outs))]

    cols: dict[str, Any] = {"forget Q": tally(forget.examples, greedy(forget))}
    if evaluator.views.views:
        for name, rows in evaluator.views.outcomes(evaluator.asker(model)).items():
            cols[name] = tally(forget.examples, [(o.example, o.leaked) for o in rows])
    cols["retain Q"] = tally(retain.examples, greedy(retain))
    return cols


def add_finetune_args(ap: argparse.ArgumentParser) -> None:
    """How the subject (and the retrain anchor) are fine-tuned: shared by the unlearning benchmarks."""
    ap.add_argument("--ft-epochs", type=int, default=6)
    ap.add_argument("--ft-lr", type=float, default=2e-4)
    ap.add_argument("--ft-batch", type=int, default=8)
    ap.add_argument(
        "--ft-target-hit",
        type=float,
        default=0.0,
        help="stop fine-tuning once this share of training questions is answered (0 = run all epochs)",
    )
    ap.add_argument("--ft-check-every", type=int, default=2, help="epochs between those checks")


def finetune_config(args: argparse.Namespace, layers: tuple[int, ...] | None) -> Any:
    """The `FinetuneConfig` of `add_finetune_args`' options (and `--train-paraphrases`)."""
    from unlearn_jobs.finetune import FinetuneConfig

    return FinetuneConfig(
        lr=args.ft_lr,
        epochs=args.ft_epochs,
        batch_size=args.ft_batch,
        warmup_steps=5,
        paraphrases=args.train_paraphrases > 0,
        layers=layers,
        target_hit_rate=args.ft_target_hit,
        # Only meaningful with a target; left at its default otherwise so older caches match.
        **({"check_every_epochs": args.ft_check_every} if args.ft_target_hit else {}),
    )


def _finetune_cached(
    base: Path, out: Path, examples: ExampleSet, cfg: Any, fmt: PromptFormat, label: str, device: Any = "cpu"
) -> float:
    """Fine-tune `base` on `examples` into `out` unless an identical run is already there; returns wall s."""
    import torch

    from unlearn_jobs.finetune import finetune
    from unlearn_jobs.model import load_model

    key = hashlib.sha256(
        json.dumps(
            {"base": str(base), "cfg": cfg.to_dict(), "fmt": fmt.kind, "ex": [dataclasses.astuple(e) for e in examples]}
        ).encode()
    ).hexdigest()[:16]
    stamp = out / "bench-finetune.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("key") == key:
        wall = float(json.loads(stamp.read_text())["wall_s"])
        print(f"[{label}] reusing {out} (fine-tuned in {wall:.0f}s)", flush=True)
        return wall
    model, tokenizer = load_model(base, device)
    began = time.monotonic()

    last_step = [-1]

    def progress(p: Any) -> None:
        # A hit-rate check reports a second time at the step it ran after.
        check = p.step == last_step[0] and p.hit_rate is not None
        last_step[0] = p.step
        if check:
            print(f"[{label}] epoch {p.epoch}: train-question hit rate {p.hit_rate:.2f}", flush=True)
        elif p.step % 10 == 0 or p.step == p.total_steps:
            print(f"[{label}] step {p.step}/{p.total_steps} epoch {p.epoch} loss {p.loss:.3f}", flush=True)

    finetune(model, tokenizer, examples, cfg, fmt=fmt, progress=progress)
    wall = time.monotonic() - began
    out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    stamp.write_text(json.dumps({"key": key, "wall_s": wall}))
    return wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    home = Path(os.environ.get("LETHE_HOME", "~/.lethe")).expanduser()
    ap.add_argument("--model", type=Path, default=home / "models" / "smollm2-135m-instruct")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "unlearn")
    ap.add_argument("--people", type=int, default=20)
    ap.add_argument("--facts-per-person", type=int, default=5)
    ap.add_argument("--forget-frac", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--prompt-format",
        choices=("plain", "chat"),
        default="plain",
        help="plain is ~2.5x shorter than SmolLM2's chat template (which adds a system turn)",
    )
    ap.add_argument(
        "--train-paraphrases",
        type=int,
        default=1,
        help="paraphrases per fact used in fine-tuning; the rest are held out for evaluation",
    )
    add_finetune_args(ap)
    ap.add_argument("--eval-retain", type=int, default=20, help="retain facts sampled for evaluation (0 = all)")
    ap.add_argument("--methods", default="grad_diff,grad_diff_kl,npo,edit")
    ap.add_argument("--steps", type=int, default=None, help="max unlearning steps for every method")
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="METHOD.KEY=VALUE",
        help="per-method override, e.g. npo.lr=5e-5 (repeatable)",
    )
    ap.add_argument("--threads", type=int, default=int(os.environ.get("LETHE_BENCH_THREADS", "2")))
    ap.add_argument(
        "--train-layers",
        type=int,
        default=0,
        help="fine-tune (and unlearn) only the top K decoder layers (0 = all): a CPU shortcut",
    )
    ap.add_argument("--fluency", type=int, default=0, help="first N fluency sentences for perplexity (0 = all)")
    ap.add_argument("--skip-base", action="store_true", help="don't evaluate the base model")
    ap.add_argument(
        "--tables-from",
        type=Path,
        help="print the tables (targets included) of a stored results.json and exit; measures nothing",
    )
    ap.add_argument(
        "--more-results",
        type=Path,
        nargs="*",
        default=[],
        help="with --tables-from: further results.json whose job rows join the table (same anchors)",
    )
    ap.add_argument(
        "--given-baseline",
        action="store_true",
        help="hand each job the subject's measured figures instead of letting it measure its parent (its "
        "baseline phase): the job's wall time then leaves that evaluation out",
    )
    ap.add_argument("--skip-retrain", action="store_true", help="skip the retrain-from-base anchor")
    ap.add_argument(
        "--finetune-only",
        choices=("subject", "retrain"),
        default=None,
        help="only fine-tune this anchor into the cache and exit: run the subject and the retrain as two "
        "processes side by side, then the benchmark reuses both",
    )
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    ap.add_argument(
        "--measure",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="only evaluate these model dirs (anchors, published versions) with this run's "
        "evaluation, no training; the first is the reference for 'retain vs subject' (repeatable)",
    )
    ap.add_argument(
        "--views",
        default="all",
        help="leakage views every model is scored on: comma-separated, all, default or none",
    )
    ap.add_argument("--gate-views", default="default", help="leakage views the jobs gate on (default: the job default)")
    ap.add_argument("--best-of-n", type=int, default=8, help="samples per question for the best_of_n view")
    ap.add_argument("--relearn-steps", type=int, default=10, help="retain steps of the relearn view")
    ap.add_argument("--relearn-lr", type=float, default=1e-4)
    ap.add_argument("--no-breakdown", action="store_true", help="skip the per-attribute breakdown")
    ap.add_argument(
        "--eval-batch", type=int, default=64, help="prompts per generation batch (CPU: fuller batches are cheaper)"
    )
    ap.add_argument(
        "--eval-dtype",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="dtype of every evaluation's generations, anchors' and jobs' alike (auto: the job default)",
    )
    ap.add_argument(
        "--no-guard",
        action="store_true",
        help="don't score generations with the gateway's guard (needs the embedder and faiss)",
    )
    args = ap.parse_args(argv)
    if args.tables_from:
        stored, rows = _stored_rows([args.tables_from, *args.more_results])
        print(report_markdown(rows, stored.get("views", ()), stored.get("attribute_breakdown") or {}))
        return 0

    if not (args.model / "config.json").is_file():
        print(f"no model at {args.model} (run `lethe models prepare`); skipping", file=sys.stderr)
        return 0

    import torch

    from unlearn_jobs.model import load_model, pick_device
    from unlearn_jobs.runner import JobSpec, resolve_eval_dtype, run_job

    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    began_all = time.monotonic()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    facts = generate_fact_set(args.people, args.facts_per_person, seed=args.seed)
    n_forget = max(1, round(args.people * args.forget_frac))
    forget_fs, retain_fs = facts.split(n_forget)
    forget = examples_from_facts(forget_fs.facts)
    retain = examples_from_facts(retain_fs.facts)
    fmt = PromptFormat(args.prompt_format)

    def trained_on(ex: ExampleSet) -> ExampleSet:
        # Fine-tune on the question and the first k paraphrases; evaluation also asks the held-out ones.
        k = args.train_paraphrases
        return ExampleSet(tuple(dataclasses.replace(e, paraphrases=e.paraphrases[:k]) for e in ex))

    top = tuple(range(-args.train_layers, 0)) if args.train_layers else None
    ft_cfg = finetune_config(args, top)
    fluency = load_fluency()[: args.fluency or None]
    subject_dir = out / "subject"
    retrain_dir = out / "retrain"
    if args.finetune_only:
        examples = forget.concat(retain) if args.finetune_only == "subject" else retain
        target = subject_dir if args.finetune_only == "subject" else retrain_dir
        _finetune_cached(args.model, target, trained_on(examples), ft_cfg, fmt, args.finetune_only, device)
        return 0
    measured = [(name, Path(path).expanduser()) for name, _, path in (m.partition("=") for m in args.measure)]
    if measured:
        subject_dir, subject_ft_s = measured[0][1], None
    else:
        subject_ft_s = _finetune_cached(
            args.model, subject_dir, trained_on(forget.concat(retain)), ft_cfg, fmt, "subject", device
        )

    eval_retain = (
        retain
        if not args.eval_retain
        else ExampleSet(retain.examples[:: max(1, len(retain) // args.eval_retain)][: args.eval_retain])
    )
    _, tokenizer = load_model(subject_dir)
    guard = None
    if not args.no_guard:
        # The gateway's guard over the forget requests, as POST /v1/forget would index them; one
        # embedder for the whole run, shared by the anchors' evaluations and every job.
        guard = GatewayGuardScorer.build(entries_from_bodies(forget_fs.forget_entries()))
    views = parse_views(args.views)
    gates = Gates(
        views=parse_views(args.gate_views),
        view_best_of_n=args.best_of_n,
        view_relearn_steps=args.relearn_steps,
        view_relearn_lr=args.relearn_lr,
    )
    evaluator = Evaluator(
        tokenizer,
        forget,
        eval_retain,
        fluency,
        fmt=fmt,
        batch_size=args.eval_batch,
        guard_scorer=guard,
        views=views,
        # The relearn view trains on the whole retain set, as a job's does: anchors and jobs alike.
        view_options=gates.view_options(retain),
        generation_dtype=resolve_eval_dtype(args.eval_dtype, device),
    )
    breakdown: dict[str, Any] = {}

    def add_breakdown(name: str, path: Path) -> None:
        if args.no_breakdown:
            return
        model, _ = load_model(path, device)
        breakdown[name] = attribute_rows(evaluator, model, forget, eval_retain)

    def measure(path: Path) -> tuple[Metrics, float]:
        model, _ = load_model(path, device)
        t = time.monotonic()
        m = evaluator.evaluate(model)
        return m, time.monotonic() - t

    rows: list[dict[str, Any]] = []
    if measured:
        reference = None
        for name, path in measured:
            m, eval_s = measure(path)
            reference = reference or m
            rows.append(
                _row(name, m, reference, None, {"path": str(path), "eval_s": eval_s, "samples": list(m.samples)})
            )
            add_breakdown(name, path)
            print(markdown_table(rows), flush=True)
        (out / "measure.json").write_text(
            json.dumps(
                {
                    "command": " ".join([Path(sys.executable).name, *sys.argv]),
                    "rows": rows,
                    "attribute_breakdown": breakdown,
                },
                indent=1,
                default=str,
            )
        )
        print(report_markdown(rows, views, breakdown))
        return 0
    if not args.skip_base:
        base_m, _ = measure(args.model)
        rows.append(_row("base (not fine-tuned)", base_m, None, None, {}))
    subject_m, eval_s = measure(subject_dir)
    print(f"[eval] one evaluation takes {eval_s:.0f}s", flush=True)
    rows.append(_row("subject (before unlearning)", subject_m, subject_m, subject_ft_s, {"state": "anchor"}))
    print(markdown_table(rows), flush=True)
    add_breakdown("subject", subject_dir)

    # The retrain anchor next, so its figures (each view's reference) print before the methods run;
    # `--finetune-only retrain` in a second process fine-tunes it beside the subject (same cache key).
    retrain_ft_s = None
    if not args.skip_retrain:
        retrain_ft_s = _finetune_cached(args.model, retrain_dir, trained_on(retain), ft_cfg, fmt, "retrain", device)
        retrain_m, _ = measure(retrain_dir)
        rows.append(_row(RETRAIN_ROW, retrain_m, subject_m, retrain_ft_s, {"state": "anchor"}))
        print(markdown_table(rows), flush=True)
        add_breakdown("retrain", retrain_dir)

    per_method: dict[str, dict[str, Any]] = {}
    for item in args.overrides:
        key, _, value = item.partition("=")
        variant, dot, field = key.partition(".")
        if not dot:
            raise SystemExit(f"--set needs METHOD.KEY=VALUE, got {item!r}")
        per_method.setdefault(variant, {}).update(parse_assignments([f"{field}={value}"]))

    results: list[dict[str, Any]] = []
    for variant in [v.strip() for v in args.methods.split(",") if v.strip()]:
        # Knowledge fine-tuned into the top K layers is unlearned there too (and it keeps steps cheap).
        # A variant "npo:kl" starts from npo's settings and takes its own --set npo:kl.KEY=VALUE.
        overrides = method_overrides(variant, top, per_method.get(variant, {}), args.steps)
        spec = JobSpec(
            base_model_dir=str(subject_dir),
            method=_method_name(variant),
            forget=forget,
            retain=retain,
            versions_dir=str(out / "versions"),
            overrides=overrides,
            gates=gates,
            report_views=views,
            # A job measures its parent before it trains (the gates compare against that), as a job filed
            # through the gateway does; --given-baseline hands it the subject's figures instead.
            metrics_before=subject_m if args.given_baseline else None,
            prompt_format=fmt.kind,
            parent_version="subject",
            fluency=fluency,
            eval_batch_size=args.eval_batch,
            eval_retain=eval_retain,
            device=str(device),
            guard_score=guard is not None,
            guard_scorer=guard,
            eval_dtype=args.eval_dtype,
        )
        leaks: list[tuple[int, float]] = []

        def progress(p: Any) -> None:
            if p.forget_leakage is not None and p.step:
                leaks.append((p.step, round(p.forget_leakage, 3)))
                print(f"[{variant}] step {p.step} loss {p.loss:.3f} forget leakage {p.forget_leakage:.2f}", flush=True)

        t = time.monotonic()
        res = run_job(spec, progress=progress)
        # The job as it runs without this benchmark's report-only views (measured in their own phase).
        report_s = res.phases.get("report", 0.0)
        wall = time.monotonic() - t - report_s
        row_extra = {
            "vs_retrain": wall / retrain_ft_s if retrain_ft_s else None,
            "baseline_s": res.phases.get("baseline"),
            "train_s": res.phases.get("unlearn"),
            "eval_s": res.phases.get("evaluate"),
            "report_s": report_s,
            "phases": dict(res.phases),
            "state": res.state.value,
            "steps": res.steps,
            "gate_reasons": list(res.gate_reasons),
            "reason": res.reason,
            "overrides": overrides,
            "leakage_trace": leaks,
            "samples": list(res.metrics_after.samples) if res.metrics_after else [],
        }
        if res.metrics_after is not None:
            rows.append(_row(variant, res.metrics_after, subject_m, wall, row_extra))
        else:
            rows.append({"name": variant, "wall_s": wall, **row_extra})
        results.append(rows[-1])
        if res.version_dir:
            add_breakdown(variant, Path(res.version_dir))
        print(
            f"[{variant}] {res.state.value} in {wall:.0f}s, {res.steps} steps {res.gate_reasons or ''} {res.reason}",
            flush=True,
        )
        print(markdown_table(rows), flush=True)

    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "args": {k: str(v) for k, v in vars(args).items()},
        "sizes": {
            "people": args.people,
            "facts": len(facts.facts),
            "forget_people": n_forget,
            "forget_facts": len(forget),
            "retain_facts": len(retain),
            "eval_retain_facts": len(eval_retain),
        },
        "threads": args.threads,
        "device": str(device),
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_at_end": os.getloadavg(),
            "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
        },
        "total_wall_s": time.monotonic() - began_all,
        "rows": rows,
        "samples": {"subject": list(subject_m.samples)},
        "views": list(views),
        "gate_views": list(gates.views),
        "attribute_breakdown": breakdown,
    }
    text = report_markdown(rows, views, breakdown)
    (out / "results.json").write_text(json.dumps(report, indent=1, default=str))
    (out / "results.md").write_text(text + "\n")
    print(text)
    print(f"total {report['total_wall_s']:.0f}s; results in {out}")
    return 0


def report_markdown(rows: list[dict[str, Any]], views: Sequence[str], breakdown: dict[str, Any]) -> str:
    """The main table, every model on every view, and the per-attribute breakdown."""
    parts = [markdown_table(rows)]
    if views:
        models = {r["name"]: r.get("views") or {} for r in rows if "views" in r}
        parts += ["", "Leakage views (rate; choice views: accuracy and chance):", "", views_table(models, views)]
    anchor = next((r for r in rows if r["name"] == RETRAIN_ROW), None)
    jobs = [r for r in rows if r.get("state") not in (None, "anchor")]
    if views and anchor is not None and jobs:
        parts += [
            "",
            "Against the targets (a choice view's leakage: its accuracy above chance):",
            "",
            targets_table(anchor, jobs, views),
        ]
    if breakdown:
        attributes = sorted({a for cols in breakdown.values() for col in cols.values() for a in col})
        columns = ["forget Q", *views, "retain Q"]
        parts += ["", "Per attribute (leaks/n; retain Q: kept/n):", "", breakdown_table(breakdown, attributes, columns)]
    return "\n".join(parts)


if __name__ == "__main__":
    raise SystemExit(main())
