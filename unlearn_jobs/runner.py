"""One unlearning job end to end: baseline → method (with early stopping, cancel) → gates → publish or reject."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from unlearn_jobs.data import ExampleSet, PromptFormat, load_fluency, self_answer_retain_set
from unlearn_jobs.evaluate import Evaluator, Gates, Metrics
from unlearn_jobs.guard_score import GuardEntrySpec, GuardScorer, GuardScorerFactory, entries_from_examples
from unlearn_jobs.states import JobState


@dataclass(frozen=True)
class JobSpec:
    """Everything one job needs; plain data so it pickles into a Ray task.

    >>> spec = JobSpec(base_model_dir="~/.lethe/models/m", method="npo", forget=forget,
    ...                retain=retain, versions_dir="~/.lethe/versions", overrides={"lr": 2e-5})
    """

    base_model_dir: str
    method: str
    forget: ExampleSet
    versions_dir: str
    retain: ExampleSet = ExampleSet()
    overrides: Mapping[str, Any] = field(default_factory=dict)
    gates: Gates = Gates()
    parent_version: str | None = None
    job_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    # Forget request ids this job covers (for the manifest); defaults to the forget set's sources.
    forget_ids: tuple[str, ...] | None = None
    # Fluency sentences for perplexity; None = the set shipped with the package.
    fluency: tuple[str, ...] | None = None
    prompt_format: str = "auto"
    device: str = "auto"
    # The parent's metrics if already known (e.g. from the job that published it): saves one evaluation.
    metrics_before: Metrics | None = None
    version_id: str | None = None
    # With no retain set, keep the model's own answers to neutral questions.
    self_retain: bool = True
    # Score every evaluation generation with the gateway's own guard (an index of the forget entries):
    # a guard hit rate per set, in the metrics and the manifest. This library has no guard of its own:
    # `guard_scorer_factory` (the gateway's, passed in by whoever builds the spec) builds the scorer per
    # job; without one there is no guard score. `guard_scorer` overrides it (e.g. one shared by several
    # jobs); `forget_entries` are the requests behind `forget` (subject, literals), else they are rebuilt
    # from the examples without subjects.
    guard_score: bool = True
    guard_scorer: GuardScorer | None = None
    guard_scorer_factory: GuardScorerFactory | None = None
    forget_entries: tuple[GuardEntrySpec, ...] | None = None
    # Retain examples the gates are measured on; None = the whole retain set (a sample is enough
    # when the retain corpus is large, and evaluation is the slow part on CPU).
    eval_retain: ExampleSet | None = None
    # Prompts per generation batch: on CPU fuller batches cost less per prompt (64 vs 20: ~1.15x).
    eval_batch_size: int = 32
    num_threads: int | None = None
    # Leakage views measured after the gate decision and reported in the metrics but not gated (the
    # gated ones are `gates.views`), e.g. a benchmark that reports every view for every method. They
    # run in their own phase (`JobResult.phases["report"]`), so the rest is what a job without them costs.
    report_views: tuple[str, ...] = ()
    # dtype of the evaluation's generations: "auto" = bfloat16 where the hardware computes it natively
    # (CUDA, CPUs with AVX512-BF16 or AMX), else float32; it also scores the choice views'
    # options and perplexity. Training stays float32.
    eval_dtype: str = "auto"


@dataclass(frozen=True)
class JobProgress:
    job_id: str
    state: JobState
    progress: float
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    message: str = ""
    forget_leakage: float | None = None


@dataclass(frozen=True)
class JobResult:
    job_id: str
    state: JobState
    method: str
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    version_id: str | None = None
    version_dir: str | None = None
    metrics_before: Metrics | None = None
    metrics_after: Metrics | None = None
    gate_reasons: tuple[str, ...] = ()
    reason: str = ""
    steps: int = 0
    stopped_early: bool = False
    wall_s: float = 0.0
    # Wall seconds per phase: load (model and evaluation set-up), baseline, unlearn (steps and their
    # early-stopping checks), evaluate (the gated evaluation), report (report-only views), publish.
    phases: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "state": self.state.value,
            "method": self.method,
            "hyperparameters": dict(self.hyperparameters),
            "version_id": self.version_id,
            "version_dir": self.version_dir,
            "metrics_before": self.metrics_before.to_dict() if self.metrics_before else None,
            "metrics_after": self.metrics_after.to_dict() if self.metrics_after else None,
            "gate_reasons": list(self.gate_reasons),
            "reason": self.reason,
            "steps": self.steps,
            "stopped_early": self.stopped_early,
            "wall_s": round(self.wall_s, 3),
            "phases": {k: round(v, 3) for k, v in self.phases.items()},
        }


class _Cancelled(Exception):
    pass


# Share of the progress bar each phase takes: loading + baseline, training, evaluation, publish.
_P_BASE, _P_TRAIN, _P_EVAL = 5.0, 85.0, 95.0


def run_job(
    spec: JobSpec,
    *,
    progress: Callable[[JobProgress], None] = lambda p: None,
    should_cancel: Callable[[], bool] = lambda: False,
) -> JobResult:
    """Run one job; never raises for job failures (they end `failed` with a reason)."""
    began = time.monotonic()
    state: dict[str, Any] = {
        "method": spec.method,
        "hyper": {},
        "before": None,
        "after": None,
        "steps": 0,
        "early": False,
        "phases": {},
        "mark": began,
    }

    def report(job_state: JobState, pct: float, **kw: Any) -> None:
        # Never move the bar backwards (the repair phase extends the step count after the fact).
        state["pct"] = max(state.get("pct", 0.0), min(max(pct, 0.0), 100.0))
        progress(JobProgress(spec.job_id, job_state, round(state["pct"], 2), **kw))

    def result(job_state: JobState, **kw: Any) -> JobResult:
        return JobResult(
            spec.job_id,
            job_state,
            spec.method,
            state["hyper"],
            metrics_before=state["before"],
            metrics_after=state["after"],
            steps=state["steps"],
            stopped_early=state["early"],
            wall_s=time.monotonic() - began,
            phases=dict(state["phases"]),
            **kw,
        )

    try:
        report(JobState.RUNNING, 0.0, message="loading model")
        return _run(spec, report, should_cancel, state, result)
    except _Cancelled:
        report(JobState.CANCELLED, 100.0, message="cancelled")
        return result(JobState.CANCELLED, reason="cancelled by request")
    except Exception as exc:  # the job's boundary: any failure becomes a `failed` state with its reason
        reason = f"{type(exc).__name__}: {exc}"
        report(JobState.FAILED, 100.0, message=reason)
        return result(JobState.FAILED, reason=reason)


def _run(
    spec: JobSpec,
    report: Callable[..., None],
    should_cancel: Callable[[], bool],
    state: dict[str, Any],
    result: Callable[..., JobResult],
) -> JobResult:
    import torch

    from unlearn_jobs.methods import StepInfo, UnlearnData, get_method
    from unlearn_jobs.model import greedy_generate, load_model, pick_device
    from unlearn_jobs.publish import publish_version

    def check_cancel() -> None:
        if should_cancel():
            raise _Cancelled()

    def phase_done(name: str) -> None:
        now = time.monotonic()
        state["phases"][name] = state["phases"].get(name, 0.0) + now - state["mark"]
        state["mark"] = now

    if spec.num_threads:
        torch.set_num_threads(spec.num_threads)
    # Validate the method and its overrides before spending time on the model.
    method = get_method(spec.method).from_overrides(spec.overrides)
    cfg = method.config
    state["hyper"] = {**cfg.to_dict(), "gates": spec.gates.to_dict()}
    if len(spec.forget) == 0:
        raise ValueError("forget set is empty")
    device = pick_device(spec.device)
    model, tokenizer = load_model(spec.base_model_dir, device)
    fmt = PromptFormat(spec.prompt_format).resolve(tokenizer)  # type: ignore[arg-type]
    check_cancel()

    retain = spec.retain
    if len(retain) == 0 and spec.self_retain:

        def answer(questions: list[str]) -> list[str]:
            ids = [fmt.prompt_ids(tokenizer, q) for q in questions]
            return greedy_generate(model, tokenizer, ids, max_new_tokens=32, batch_size=spec.eval_batch_size)

        retain = self_answer_retain_set(answer)
    fluency = spec.fluency if spec.fluency is not None else load_fluency()
    evaluator = Evaluator(
        tokenizer,
        spec.forget,
        spec.eval_retain if spec.eval_retain is not None else retain,
        fluency,
        fmt=fmt,
        guard_scorer=job_guard_scorer(spec),
        paraphrases=spec.gates.include_paraphrases,
        batch_size=spec.eval_batch_size,
        views=(*spec.gates.views, *spec.report_views),
        # The relearn view trains a copy on the retain set the job keeps (never on the forget set).
        view_options=spec.gates.view_options(retain),
        generation_dtype=resolve_eval_dtype(spec.eval_dtype, device),
    )
    phase_done("load")
    gated = tuple(spec.gates.views)
    # The parent is measured on what the gates compare against (retain, perplexity) and the greedy forget
    # leakage the job starts from; not on the leakage views, which are gated on the candidate alone (a
    # view's limit is its reference plus a margin, never a share of the parent's): on the benchmark's
    # CPU setting they were 28 of the baseline's 46 s, measured for no decision.
    before = spec.metrics_before or evaluator.evaluate(model, views=())
    state["before"] = before
    phase_done("baseline")
    report(JobState.RUNNING, _P_BASE, message="baseline measured", forget_leakage=spec.gates.forget_leakage(before))
    check_cancel()

    def on_step(info: StepInfo) -> bool:
        check_cancel()
        total = max(info.total_steps, 1)
        pct = _P_BASE + (_P_TRAIN - _P_BASE) * min(info.step / total, 1.0)
        leak = None
        stop = False
        if info.phase == "unlearn" and cfg.early_stop and info.step % cfg.check_every == 0:
            # One copy in the generation dtype answers both checks (the weights do not change between them).
            generator = evaluator.generator(model)
            leak = spec.gates.leakage(evaluator.forget_scores(model, generator))
            model.train()
            # Stop as soon as the forget gate holds: every further step only costs retain utility. The
            # cheap leakage views are checked only then (the expensive ones run once, at the end).
            stop = leak <= spec.gates.forget_hit_rate_max and spec.gates.views_ok(
                evaluator.view_scores(model, expensive=False, only=spec.gates.views, generator=generator)
            )
            model.train()
        report(
            JobState.RUNNING,
            pct,
            step=info.step,
            total_steps=info.total_steps,
            loss=info.loss,
            message=f"{info.phase} step {info.step}/{info.total_steps}",
            forget_leakage=leak,
        )
        return stop

    run = method.run(model, tokenizer, UnlearnData(spec.forget, retain, fmt), device=device, on_step=on_step)
    state["steps"], state["early"] = run.steps, run.stopped_early
    phase_done("unlearn")
    check_cancel()

    report(JobState.EVALUATING, _P_TRAIN, step=run.steps, message="evaluating")
    after = evaluator.evaluate(model, views=gated)
    gate = spec.gates.check(before, after)
    phase_done("evaluate")
    state["after"] = after
    extra = tuple(v for v in dict.fromkeys(spec.report_views) if v not in gated)
    if extra:
        check_cancel()
        report(JobState.EVALUATING, _P_TRAIN, step=run.steps, message="measuring report-only views")
        after = dataclasses.replace(after, views=after.views + evaluator.view_scores(model, only=extra))
        state["after"] = after
        phase_done("report")
    check_cancel()
    if not gate.passed:
        report(
            JobState.REJECTED, 100.0, message="; ".join(gate.reasons), forget_leakage=spec.gates.forget_leakage(after)
        )
        return result(JobState.REJECTED, gate_reasons=gate.reasons, reason="gates failed")

    report(JobState.EVALUATING, _P_EVAL, message="publishing")
    published = publish_version(
        model,
        tokenizer,
        spec.versions_dir,
        parent_version=spec.parent_version,
        method=spec.method,
        hyperparameters=state["hyper"],
        forget_ids=spec.forget_ids or spec.forget.source_ids,
        metrics_before=before.to_dict(),
        metrics_after=after.to_dict(),
        version_id=spec.version_id,
        extra={"job_id": spec.job_id, "steps": run.steps, "stopped_early": run.stopped_early},
    )
    phase_done("publish")
    report(
        JobState.PUBLISHED,
        100.0,
        message=f"published {published.version_id}",
        forget_leakage=spec.gates.forget_leakage(after),
    )
    return result(JobState.PUBLISHED, version_id=published.version_id, version_dir=str(published.path))


def resolve_eval_dtype(name: str, device: Any) -> str:
    """ "auto" → "bfloat16" where the device computes it natively, else "float32"; other names pass."""
    if name != "auto":
        return name
    from unlearn_jobs.model import native_bf16

    return "bfloat16" if native_bf16(device) else "float32"


def job_guard_scorer(spec: JobSpec) -> GuardScorer | None:
    """The guard scorer a job evaluates with: the spec's own, else one its factory builds from the forget
    entries (one embedder load per job), else none (`guard_score` off, or no factory given)."""
    if spec.guard_scorer is not None or not spec.guard_score:
        return spec.guard_scorer
    if spec.guard_scorer_factory is None:
        return None
    return spec.guard_scorer_factory(spec.forget_entries or entries_from_examples(spec.forget))
