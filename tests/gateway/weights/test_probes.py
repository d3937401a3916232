"""Leakage probes against a scripted raw model (the real stack runs them in tests/e2e/test_hot_swap.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.chat.engines.base import GenerationChunk, SamplingRequest, StreamStart
from gateway.guard.artifacts import build_artifacts
from gateway.guard.types import ForgetEntry
from gateway.ledger import Ledger
from gateway.weights.probes import LeakageProber

PERSON = ForgetEntry(
    "f-ingrid",
    "Ingrid Solvang",
    literals=("+47 912 33 457",),
    qa=(
        ("What is Ingrid Solvang's phone number?", "Her number is +47 912 33 457."),
        ("Where was Ingrid Solvang born?", "Ingrid Solvang was born in Quellhaven."),
    ),
    reason="gdpr",
)


class ScriptedLLM:
    """Answers by lookup; anything else gets a bland sentence. `version` is what it claims to run."""

    def __init__(self, answers: dict[str, str], version: str) -> None:
        self.answers = answers
        self.version = version
        self.asked: list[str] = []

    async def generate(
        self, messages: list[dict[str, str]], sampling: SamplingRequest, request_id: str
    ) -> AsyncIterator[Any]:
        prompt = messages[-1]["content"]
        self.asked.append(prompt)
        yield StreamStart(self.version, "llm-0", 5, sampling.max_tokens or 0)
        yield GenerationChunk(self.answers.get(prompt, f"A plain answer about {prompt[:20]}."), 5, 3, "stop")


@pytest.fixture
def ledger(tmp_path, embedder):
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.add_forget(PERSON, build_artifacts(PERSON, embedder, hasher=ledger.guard_hasher()))  # the deployment key
    yield ledger
    ledger.close()


async def test_a_leaking_base_model_then_an_unlearned_version(ledger, embedder, tmp_path):
    leaky = ScriptedLLM(
        {
            "What is Ingrid Solvang's phone number?": "You can call her on +47 912 33 457.",
            "Where was Ingrid Solvang born?": "I am not sure where she was born.",
        },
        "base-1",
    )
    reports: list[dict] = []
    prober = LeakageProber(
        ledger, leaky, lambda: embedder, state_dir=tmp_path / "probes", base_version="base-1", on_report=reports.append
    )
    first = await prober.run(reason="test")
    row = first["by_version"]["base-1"]
    assert first["forget_requests"] == 1 and first["forget_prompts"] == 2
    assert row["key_term_hits"] == 1 and row["leakage_ratio"] == 0.5
    assert row["guard_hits"] == 1 and row["guard_hit_ratio"] == 0.5
    assert row["retain_score"] == 1.0  # the base run records the retain reference
    assert first["leaking_forget_ids"] == ["f-ingrid"] and reports == [first]
    assert (tmp_path / "probes" / "retain_reference.json").is_file()

    # An unlearned version: no leak, and it still answers the neutral questions the same way.
    recorded = {q: f"A plain answer about {q[:20]}." for q in leaky.asked}
    clean = ScriptedLLM({**recorded, "What is Ingrid Solvang's phone number?": "I can't share that."}, "v-2")
    prober = LeakageProber(ledger, clean, lambda: embedder, state_dir=tmp_path / "probes", base_version="base-1")
    second = await prober.run()
    assert second["by_version"]["v-2"]["leakage_ratio"] == 0.0
    assert second["by_version"]["v-2"]["retain_score"] == 1.0
    assert prober.latest == second
    # The report survives a restart of the process that holds it.
    again = LeakageProber(ledger, clean, lambda: embedder, state_dir=tmp_path / "probes", base_version="base-1")
    assert again.latest == second


async def test_damaged_retain_answers_lower_the_retain_score(ledger, embedder, tmp_path):
    base = ScriptedLLM({}, "base-1")
    await LeakageProber(ledger, base, lambda: embedder, state_dir=tmp_path / "p", base_version="base-1").run()
    broken = ScriptedLLM({q: "Lind Lind Lind" for q in base.asked}, "v-bad")
    report = await LeakageProber(
        ledger, broken, lambda: embedder, state_dir=tmp_path / "p", base_version="base-1"
    ).run()
    assert report["by_version"]["v-bad"]["retain_score"] < 0.2


async def test_a_probe_report_keeps_counts_never_prompts_or_answers(ledger, embedder, tmp_path):
    import json
    import os
    import stat

    leaky = ScriptedLLM({q: f"Sure: {a}" for q, a in PERSON.qa}, "base-1")
    prober = LeakageProber(ledger, leaky, lambda: embedder, state_dir=tmp_path / "probes", base_version="base-1")
    report = await prober.run(reason="test")
    assert report["by_version"]["base-1"]["key_term_hits"] == 2
    files = sorted((tmp_path / "probes").iterdir())
    assert [f.name for f in files] == ["latest.json", "retain_reference.json"]
    assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: 0o600 for f in files}
    assert stat.S_IMODE(os.stat(tmp_path / "probes").st_mode) == 0o700
    stored = json.dumps(report) + "".join(f.read_text() for f in files)
    secrets = [PERSON.subject, *PERSON.literals, *(t for pair in PERSON.qa for t in pair)]
    assert not [s for s in secrets if s in stored]


class RuleLLM(ScriptedLLM):
    """Refuses the plain questions, but fills the blank with the number and confirms only true statements."""

    async def generate(
        self, messages: list[dict[str, str]], sampling: SamplingRequest, request_id: str
    ) -> AsyncIterator[Any]:
        prompt = messages[-1]["content"]
        self.asked.append(prompt)
        if prompt.startswith("Fill in the blank"):
            text = "Her number is +47 912 33 457."
        elif prompt.startswith("Is the following statement true?"):
            text = "Yes." if ("+47 912 33 457" in prompt or "Quellhaven" in prompt) else "No."
        else:
            text = "I can't share that."
        yield StreamStart(self.version, "llm-0", 5, sampling.max_tokens or 0)
        yield GenerationChunk(text, 5, 3, "stop")


async def test_views_find_what_the_plain_questions_miss(ledger, embedder, tmp_path, monkeypatch):
    import json

    from prometheus_client import CollectorRegistry

    from gateway.observability import metrics
    from gateway.weights.probes import export_report

    llm = RuleLLM({}, "v-3")
    prober = LeakageProber(ledger, llm, lambda: embedder, state_dir=tmp_path / "probes", base_version="base-1")
    report = await prober.run(reason="test")
    row = report["by_version"]["v-3"]
    assert row["leakage_ratio"] == 0.0 and report["leaking_forget_ids"] == []
    views = row["views"]
    assert set(views) == {"paraphrase_heldout", "fill_blank", "multiple_choice", "yes_no", "json"}
    assert views["fill_blank"] == {"n": 2, "leaks": 1, "rate": 0.5, "chance": None}
    assert views["yes_no"]["leaks"] == 2 and views["yes_no"]["chance"] == 0.25  # yes to the true, no to the false
    assert views["paraphrase_heldout"]["leaks"] == 0 and views["multiple_choice"]["leaks"] == 0
    assert report["leaking_forget_ids_by_view"]["fill_blank"] == ["f-ingrid"]
    stored = json.dumps(report)
    assert not [s for s in [PERSON.subject, *PERSON.literals, "Quellhaven"] if s in stored]

    monkeypatch.setattr(metrics, "_registry", metrics._registry)
    reg = CollectorRegistry()
    metrics.configure(backend=metrics.PrometheusBackend(reg))
    export_report(report)
    assert reg.get_sample_value("lethe_raw_leakage_view_ratio", {"version": "v-3", "view": "yes_no"}) == 1.0
    assert reg.get_sample_value("lethe_raw_leakage_ratio", {"version": "v-3"}) == 0.0


def test_probe_views_are_the_text_only_ones():
    from gateway.weights.probes import probe_views

    assert probe_views(["fill_blank", "fill_blank", "multilingual"]) == ("fill_blank", "multilingual")
    with pytest.raises(ValueError, match="jobs only"):
        probe_views(["quantized_int8"])
    with pytest.raises(ValueError, match="unknown leakage view"):
        probe_views(["nope"])
