"""`lethe unlearn run` and `lethe finetune`: offline jobs against a model directory, with a progress bar."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from unlearn_jobs.config import parse_assignments
from unlearn_jobs.data import ExampleSet, load_forget_bodies, load_forget_file, load_retain_file
from unlearn_jobs.evaluate import Gates
from unlearn_jobs.guard_score import GuardScorerFactory, entries_from_bodies
from unlearn_jobs.runner import JobProgress, JobSpec, run_job
from unlearn_jobs.states import JobState


def default_home() -> Path:
    return Path(os.environ.get("LETHE_HOME", "~/.lethe")).expanduser()


def add_unlearn_run_parser(
    unlearn_subparsers: Any, *, guard_scorer_factory: GuardScorerFactory | None = None
) -> argparse.ArgumentParser:
    """`unlearn run`; `guard_scorer_factory` scores generations with a guard (the gateway's), else none."""
    p: argparse.ArgumentParser = unlearn_subparsers.add_parser(
        "run",
        help="run an unlearning job offline against a model directory",
        description="Unlearn the facts of FILE from the model in DIR, check the "
        "gates and publish a weight version under HOME/versions.",
    )
    p.add_argument("--model", required=True, metavar="DIR", help="model directory (HF safetensors)")
    p.add_argument("--method", default="rmu", help="unlearning method (rmu, npo, simnpo, grad_diff, edit; default rmu)")
    p.add_argument(
        "--forget",
        required=True,
        metavar="FILE",
        help="forget requests JSON (one body, a list, {requests: [...]}) or a fact-set JSON",
    )
    p.add_argument("--retain", metavar="FILE", help="retain set: .txt, JSON/JSONL of QA or texts, or a fact set")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="method hyperparameter override, e.g. lr=1e-5 (repeatable)",
    )
    p.add_argument(
        "--gate",
        dest="gates",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="gate override, e.g. forget_hit_rate_max=0.1 (repeatable)",
    )
    p.add_argument("--parent", metavar="ID", help="parent weight version id recorded in the manifest")
    p.add_argument(
        "--out", metavar="HOME", type=Path, default=None, help="LETHE_HOME (default $LETHE_HOME or ~/.lethe)"
    )
    p.add_argument("--prompt-format", choices=("auto", "plain", "chat"), default="auto")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--no-guard-score",
        action="store_true",
        help="don't score generations with the gateway's guard (saves loading the embedder)",
    )
    p.set_defaults(func=cmd_unlearn_run, guard_scorer_factory=guard_scorer_factory)
    return p


def add_finetune_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "finetune",
        help="fine-tune a model on (fictitious) facts until it answers them",
        description="Makes the subject model a forget request then targets.",
    )
    p.add_argument("--model", required=True, metavar="DIR", help="base model directory")
    p.add_argument("--out", required=True, metavar="DIR", type=Path, help="where to save the fine-tuned model")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--facts", metavar="FILE", help="fact-set JSON or retain-style QA file to train on")
    src.add_argument("--people", type=int, default=20, help="generate this many fictitious people (default 20)")
    p.add_argument("--facts-per-person", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--write-facts",
        metavar="FILE",
        type=Path,
        help="also write the generated fact set here (input for --forget/--retain later)",
    )
    p.add_argument(
        "--write-forget",
        metavar="FILE",
        type=Path,
        help="write a forget file (request bodies with ids and paraphrases) for the first --forget-people people",
    )
    p.add_argument("--forget-people", type=int, default=1)
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="fine-tune override, e.g. epochs=20 (repeatable)",
    )
    p.add_argument("--prompt-format", choices=("auto", "plain", "chat"), default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_finetune)
    return p


def register(
    subparsers: Any, *, unlearn_subparsers: Any | None = None, guard_scorer_factory: GuardScorerFactory | None = None
) -> None:
    """Add `unlearn run` and `finetune` to a `lethe` argparse.

    Pass `unlearn_subparsers` when the caller already has an `unlearn` command (for
    submit/status/cancel); otherwise an `unlearn` command is created here. `guard_scorer_factory`:
    the guard that scores `unlearn run`'s generations (the gateway passes its own); none without it.
    """
    if unlearn_subparsers is None:
        unlearn = subparsers.add_parser("unlearn", help="unlearning jobs")
        unlearn_subparsers = unlearn.add_subparsers(dest="unlearn_command", required=True)
    add_unlearn_run_parser(unlearn_subparsers, guard_scorer_factory=guard_scorer_factory)
    add_finetune_parser(subparsers)


def _bar(total: float, disabled: bool, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        disable=disabled,
        desc=desc,
        unit="%" if total == 100 else "step",
        dynamic_ncols=True,
        file=sys.stderr,
    )


def cmd_unlearn_run(args: argparse.Namespace) -> int:
    try:
        overrides = parse_assignments(args.overrides)
        gates = Gates.from_overrides(parse_assignments(args.gates))
        forget = load_forget_file(args.forget)
        entries = entries_from_bodies(load_forget_bodies(args.forget))
        retain = load_retain_file(args.retain) if args.retain else None
    except (ValueError, OSError, KeyError) as exc:
        print(f"lethe unlearn run: {exc}", file=sys.stderr)
        return 2
    home = args.out or default_home()
    spec = JobSpec(
        base_model_dir=str(args.model),
        method=args.method,
        forget=forget,
        versions_dir=str(home / "versions"),
        overrides=overrides,
        gates=gates,
        parent_version=args.parent,
        prompt_format=args.prompt_format,
        device=args.device,
        guard_score=not args.no_guard_score,
        forget_entries=entries,
        guard_scorer_factory=getattr(args, "guard_scorer_factory", None),
        retain=retain if retain is not None else ExampleSet(),
    )
    bar = _bar(100, args.no_progress, f"unlearn {args.method}")

    def progress(p: JobProgress) -> None:
        bar.n = p.progress
        post: dict[str, Any] = {"state": p.state.value}
        if p.loss is not None:
            post["loss"] = f"{p.loss:.3f}"
        if p.forget_leakage is not None:
            post["leak"] = f"{p.forget_leakage:.2f}"
        bar.set_postfix(post, refresh=False)
        bar.refresh()

    try:
        result = run_job(spec, progress=progress)
    finally:
        bar.close()
    print(json.dumps(result.to_dict(), indent=2))
    return {JobState.PUBLISHED: 0, JobState.REJECTED: 3}.get(result.state, 1)


def cmd_finetune(args: argparse.Namespace) -> int:
    import torch

    from unlearn_jobs.data import PromptFormat, examples_from_facts, load_retain_file
    from unlearn_jobs.facts import FactSet, generate_fact_set
    from unlearn_jobs.finetune import FinetuneConfig, FinetuneProgress, finetune
    from unlearn_jobs.model import load_model, pick_device

    try:
        config = FinetuneConfig.from_overrides(parse_assignments(args.overrides))
        if args.facts:
            raw = json.loads(Path(args.facts).read_text(encoding="utf-8"))
            fact_set = FactSet.from_dict(raw) if isinstance(raw, dict) and "people" in raw else None
            examples = examples_from_facts(fact_set.facts) if fact_set else load_retain_file(args.facts)
        else:
            fact_set = generate_fact_set(args.people, args.facts_per_person, args.seed)
            examples = examples_from_facts(fact_set.facts)
    except (ValueError, OSError, KeyError) as exc:
        print(f"lethe finetune: {exc}", file=sys.stderr)
        return 2
    if fact_set is not None and args.write_facts:
        fact_set.save(args.write_facts)
    if fact_set is not None and args.write_forget:
        forget_part, _ = fact_set.split(args.forget_people)
        args.write_forget.write_text(
            json.dumps(fact_set.subset([p.person_id for p in forget_part.people]).forget_entries(), indent=1),
            encoding="utf-8",
        )
    device = pick_device(args.device)
    model, tokenizer = load_model(args.model, device)
    bar = _bar(0, args.no_progress, "finetune")

    def progress(p: FinetuneProgress) -> None:
        bar.total = p.total_steps
        bar.n = p.step
        post = {"epoch": p.epoch, "loss": f"{p.loss:.3f}"}
        if p.hit_rate is not None:
            post["hit"] = f"{p.hit_rate:.2f}"
        bar.set_postfix(post, refresh=False)
        bar.refresh()

    try:
        result = finetune(
            model, tokenizer, examples, config, fmt=PromptFormat(args.prompt_format), device=device, progress=progress
        )
    finally:
        bar.close()
    args.out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        model.save_pretrained(args.out, safe_serialization=True)
    tokenizer.save_pretrained(args.out)
    print(
        json.dumps(
            {
                "out": str(args.out),
                "steps": result.steps,
                "epochs": result.epochs,
                "final_loss": result.final_loss,
                "hit_rate": result.hit_rate,
                "wall_s": round(result.wall_s, 2),
            },
            indent=2,
        )
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry (`python -m unlearn_jobs.cli …`); `lethe` wires the same parsers via `register`."""
    parser = argparse.ArgumentParser(prog="lethe")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
