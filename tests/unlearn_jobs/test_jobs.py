"""Acceptance: a tiny Llama memorises fictitious facts; each method forgets the forget set behind the gates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.jobs.guard_scorer import GatewayGuardScorer, build_guard_scorer
from unlearn_jobs.data import examples_from_facts, load_fluency
from unlearn_jobs.evaluate import Evaluator, Gates, Metrics
from unlearn_jobs.facts import generate_fact_set
from unlearn_jobs.guard_score import GuardEntrySpec, entries_from_bodies
from unlearn_jobs.methods.base import MethodRun, UnlearningMethod, register
from unlearn_jobs.model import greedy_generate, load_model
from unlearn_jobs.publish import read_manifest, verify_version
from unlearn_jobs.runner import JobProgress, JobSpec, job_guard_scorer, run_job
from unlearn_jobs.states import JobState

# The tiny model learns in a few hundred steps at ~1e-3, so its unlearning rates sit in that range too;
# the shipped defaults are for 100M+ models.
TINY = {
    "grad_diff": {"lr": 3e-4, "steps": 40, "check_every": 2},
    "grad_diff_kl": {"lr": 3e-4, "steps": 40, "check_every": 2, "retain_loss": "kl"},
    "npo": {"lr": 3e-4, "steps": 40, "check_every": 2},
    "edit": {"lr": 3e-3, "steps": 30, "max_delta": 0.01},
}


@pytest.fixture(scope="session")
def baseline(subject) -> Metrics:
    model, tokenizer = load_model(subject.model_dir)
    return Evaluator(tokenizer, subject.forget, subject.retain, load_fluency(), fmt=subject.fmt).evaluate(model)


@pytest.fixture(scope="session")
def guard(subject) -> GatewayGuardScorer:
    # One embedder load for the session: what run_job builds per job from the forget requests.
    forget_ids = set(subject.forget.source_ids)
    return GatewayGuardScorer.build(entries_from_bodies(subject.facts.subset(forget_ids).forget_entries()))


def _spec(subject, tmp_path: Path, method: str, overrides: dict, baseline: Metrics | None = None, **kw) -> JobSpec:
    kw.setdefault("guard_score", False)
    return JobSpec(
        base_model_dir=str(subject.model_dir),
        method=method,
        forget=subject.forget,
        retain=subject.retain,
        versions_dir=str(tmp_path / "versions"),
        overrides=overrides,
        prompt_format="plain",
        metrics_before=baseline,
        parent_version="v0",
        **kw,
    )


def test_subject_model_knows_its_facts(baseline):
    assert baseline.forget.questions.hit_rate == 1.0
    assert baseline.retain.pooled_hit_rate >= 0.95
    assert baseline.forget.worst_hit_rate >= 0.9


@pytest.mark.parametrize("name", ["grad_diff", "grad_diff_kl", "npo", "edit"])
def test_method_forgets_and_keeps_retain(subject, baseline, guard, tmp_path, name):
    method = "grad_diff" if name.startswith("grad_diff") else name
    seen: list[JobProgress] = []
    result = run_job(_spec(subject, tmp_path, method, TINY[name], baseline, guard_scorer=guard), progress=seen.append)
    assert result.state is JobState.PUBLISHED, (result.reason, result.gate_reasons)
    after = result.metrics_after
    assert after is not None
    # Acceptance: forget key-term hit rate (questions and paraphrases) <= 0.2, retain >= 80% of before.
    assert after.forget.questions.hit_rate <= 0.2
    assert after.forget.worst_hit_rate <= 0.2
    assert after.retain.pooled_hit_rate >= 0.8 * baseline.retain.pooled_hit_rate
    states = [p.state for p in seen]
    assert states[0] is JobState.RUNNING and JobState.EVALUATING in states and states[-1] is JobState.PUBLISHED
    assert [p.progress for p in seen] == sorted(p.progress for p in seen)
    assert result.version_dir is not None
    verify_version(result.version_dir)
    manifest = read_manifest(result.version_dir)
    assert manifest["method"] == method and manifest["parent_version"] == "v0"
    assert manifest["forget_ids"] == list(subject.forget.source_ids)
    assert manifest["metrics_after"]["forget_leakage"] <= 0.2
    assert manifest["hyperparameters"]["lr"] == TINY[name]["lr"]
    assert any(f.endswith(".safetensors") for f in manifest["files"])
    # The gateway's guard on the raw outputs: reported for both sets, before (unknown here) and after.
    assert manifest["metrics_after"]["forget_guard_hit_rate"] is not None
    assert manifest["metrics_after"]["retain_guard_hit_rate"] is not None
    assert after.forget.questions.guard is not None and after.retain.pooled_guard is not None


def test_edit_answers_the_refusal_and_keeps_unedited_facts(subject, baseline, tmp_path):
    result = run_job(_spec(subject, tmp_path, "edit", TINY["edit"], baseline))
    assert result.state is JobState.PUBLISHED
    after = result.metrics_after
    assert after.forget.questions.hit_rate == 0.0
    assert after.retain.questions.hit_rate == baseline.retain.questions.hit_rate
    # Samples are scores only; the refusal itself is read back from the published weights.
    assert after.samples[0].index == 0 and not after.samples[0].key_term_hit, after.samples
    model, tokenizer = load_model(result.version_dir)
    first = subject.forget.examples[0]
    [answer] = greedy_generate(model, tokenizer, [subject.fmt.prompt_ids(tokenizer, first.prompt)], max_new_tokens=8)
    assert "don ' t know" in answer, answer
    # Nothing the job keeps (result, manifest) repeats a forget prompt, answer or paraphrase.
    kept = json.dumps(result.to_dict()) + Path(result.version_dir, "manifest.json").read_text()
    secrets = [t for e in subject.forget for t in (e.prompt, e.target, *e.paraphrases)]
    assert not [t for t in secrets if t in kept]


def test_absurd_learning_rate_is_rejected_and_publishes_nothing(subject, baseline, tmp_path):
    result = run_job(_spec(subject, tmp_path, "grad_diff", {"lr": 5.0, "steps": 4, "early_stop": False}, baseline))
    assert result.state is JobState.REJECTED
    assert result.gate_reasons and result.metrics_after is not None and result.metrics_before is not None
    # A rejected job's record (what the ledger and the jobs API show) carries scores, never forget text.
    kept = json.dumps(result.to_dict())
    assert not [t for e in subject.forget for t in (e.prompt, e.target, *e.paraphrases) if t in kept]
    assert not (tmp_path / "versions").exists() or not any((tmp_path / "versions").iterdir())


def test_cancel_ends_cancelled_with_no_version(subject, baseline, tmp_path):
    calls = {"n": 0}

    def should_cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 4  # a few steps in

    seen: list[JobProgress] = []
    result = run_job(
        _spec(subject, tmp_path, "npo", {**TINY["npo"], "early_stop": False}, baseline),
        progress=seen.append,
        should_cancel=should_cancel,
    )
    assert result.state is JobState.CANCELLED and seen[-1].state is JobState.CANCELLED
    assert result.steps > 0 or seen[-2].step > 0
    assert not (tmp_path / "versions").exists() or not any((tmp_path / "versions").iterdir())


@register
class _ExplodingMethod(UnlearningMethod):
    """Test-only method: fails after its first step, as a crash mid-job would."""

    name = "test_exploding"

    def run(self, model, tokenizer, data, *, device, on_step) -> MethodRun:
        raise RuntimeError("simulated crash mid-job")


def test_crash_mid_job_ends_failed_with_reason(subject, baseline, tmp_path):
    result = run_job(_spec(subject, tmp_path, "test_exploding", {}, baseline))
    assert result.state is JobState.FAILED and "simulated crash" in result.reason
    assert not (tmp_path / "versions").exists() or not any((tmp_path / "versions").iterdir())


def test_crash_mid_publish_leaves_no_directory(subject, baseline, tmp_path, monkeypatch):
    import unlearn_jobs.publish as publish

    def broken_rename(src, dst):
        raise OSError("disk vanished")

    monkeypatch.setattr(publish.os, "rename", broken_rename)
    result = run_job(_spec(subject, tmp_path, "npo", TINY["npo"], baseline))
    assert result.state is JobState.FAILED and "disk vanished" in result.reason
    assert list((tmp_path / "versions").iterdir()) == []


def test_bad_overrides_fail_fast(subject, tmp_path):
    result = run_job(_spec(subject, tmp_path, "npo", {"learning_rate": 1}))
    assert result.state is JobState.FAILED and "unknown" in result.reason
    result = run_job(_spec(subject, tmp_path, "no_such_method", {}))
    assert result.state is JobState.FAILED and "unknown unlearning method" in result.reason


def test_result_serialises_with_the_guard_score_built_by_the_job(subject, baseline, tmp_path):
    # guard_score is on by default: the job builds its own guard index from the forget requests, with
    # the factory the gateway hands in (this library has no guard of its own).
    entries = entries_from_bodies(subject.facts.subset(subject.forget.source_ids).forget_entries())
    spec = _spec(
        subject,
        tmp_path,
        "grad_diff",
        {**TINY["grad_diff"], "steps": 2, "early_stop": False},
        baseline,
        # Gates that pass anything (leakage views off too): this test is about what the result carries.
        gates=Gates(forget_hit_rate_max=1.0, views=()),
        guard_score=True,
        forget_entries=entries,
        guard_scorer_factory=build_guard_scorer,
        # Measured after the gate, in their own phase, and never gated.
        report_views=("fill_blank",),
    )
    assert JobSpec(base_model_dir="m", method="npo", forget=subject.forget, versions_dir="v").guard_score
    result = run_job(spec)
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["state"] == "published" and payload["steps"] == 2
    assert list(payload["metrics_after"]["views"]) == ["fill_blank"]
    phases = payload["phases"]
    assert list(phases) == ["load", "baseline", "unlearn", "evaluate", "report", "publish"]
    assert all(v >= 0 for v in phases.values()) and sum(phases.values()) <= payload["wall_s"] + 0.01
    assert 0.0 <= payload["metrics_after"]["forget_guard_hit_rate"] <= 1.0
    assert 0.0 <= payload["metrics_after"]["retain_guard_hit_rate"] <= 1.0
    assert job_guard_scorer(_spec(subject, tmp_path, "npo", {})) is None


def test_the_baseline_measures_what_the_gates_compare_and_not_the_parents_views(subject, tmp_path):
    # The views are gated on the candidate alone (reference + margin), so the parent's are never
    # measured: the baseline is retain, perplexity and the greedy forget leakage.
    gates = Gates(forget_hit_rate_max=1.0, views=("fill_blank", "yes_no"))
    result = run_job(
        _spec(subject, tmp_path, "grad_diff", {**TINY["grad_diff"], "steps": 1, "early_stop": False}, gates=gates)
    )
    before, after = result.metrics_before, result.metrics_after
    assert before is not None and after is not None
    assert before.views == () and {v.view for v in after.views} == {"fill_blank", "yes_no"}
    assert before.retain.questions.n == len(subject.retain) and before.forget.questions.n == len(subject.forget)
    assert before.perplexity > 0


def test_the_guard_scorer_comes_from_the_injected_factory():
    forget = examples_from_facts(generate_fact_set(2, facts_per_person=2, seed=1).facts)
    built: list[tuple[GuardEntrySpec, ...]] = []

    def factory(entries):
        built.append(tuple(entries))
        return lambda text: 0.5

    def spec(**kw) -> JobSpec:
        return JobSpec(base_model_dir="m", method="npo", forget=forget, versions_dir="v", **kw)

    assert job_guard_scorer(spec()) is None  # no factory given: no guard score
    entries = (GuardEntrySpec("f-1", "Ana Lorn", literals=("+47 900 00 001",)),)
    scorer = job_guard_scorer(spec(guard_scorer_factory=factory, forget_entries=entries))
    assert scorer is not None and scorer("anything") == 0.5 and built == [entries]
    # Without the requests, the entries are rebuilt from the forget set, one per source.
    job_guard_scorer(spec(guard_scorer_factory=factory))
    assert [e.forget_id for e in built[1]] == list(forget.source_ids)
    # Off means off, factory or not.
    assert job_guard_scorer(spec(guard_scorer_factory=factory, guard_score=False)) is None


def test_a_refusal_edit_that_passes_the_greedy_gate_is_rejected_by_best_of_n(subject, baseline, tmp_path):
    # `edit` teaches "I don't know." to the forget questions: greedy answers stop leaking, but sampled
    # answers (8 at temperature 1) still carry the facts. A job gated on best_of_n is rejected for it.
    gates = Gates(views=("best_of_n", "fill_blank"))
    result = run_job(_spec(subject, tmp_path, "edit", TINY["edit"], baseline, gates=gates))
    after = result.metrics_after
    assert after is not None and gates.forget_ok(after)  # the greedy-question gate holds
    assert result.state is JobState.REJECTED, result.gate_reasons
    assert [r.split(":")[0] for r in result.gate_reasons] == ["view best_of_n"], result.gate_reasons
    assert {v.view for v in after.views} == {"best_of_n", "fill_blank"}
    assert not (tmp_path / "versions").exists() or not any((tmp_path / "versions").iterdir())
