"""Leakage views: their probes, their scoring (scripted answers and the tiny subject model) and their gates."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import pytest

from unlearn_jobs.data import examples_from_facts, examples_from_request, load_fluency
from unlearn_jobs.evaluate import Evaluator, Gates, Metrics, ProbeScores, SetScores
from unlearn_jobs.facts import _TEMPLATES, generate_fact_set
from unlearn_jobs.views import (
    ALL_VIEWS,
    DEFAULT_VIEWS,
    EXPENSIVE_VIEWS,
    ViewOptions,
    ViewProbe,
    ViewScores,
    ViewSuite,
    available_views,
    get_view,
)
from unlearn_jobs.views.choice import parse_letter, parse_yes_no
from unlearn_jobs.views.questions import HELDOUT_PARAPHRASES

FACTS = generate_fact_set(4, 5, seed=3)
FORGET = examples_from_facts(FACTS.facts_of(FACTS.people[0].person_id) + FACTS.facts_of(FACTS.people[1].person_id))


class ScriptedAsker:
    """A 'model' that knows FACTS and answers by rules: `direct` answers questions that name the person,
    `indirect` those that describe them, `choose` picks the true option / confirms only true statements."""

    def __init__(self, *, direct: bool, indirect: bool = False, choose: bool = False, quantized_leak: bool = False):
        self.direct, self.indirect, self.choose, self.quantized_leak = direct, indirect, choose, quantized_leak
        self.derived = False

    def _answer(self, p: ViewProbe) -> str:
        e = FORGET.examples[p.example]  # the fact this probe asks for
        named = e.person in p.prompt
        described = any(o.value in p.prompt for o in FORGET if o.person == e.person and o.attribute != e.attribute)
        if (named and (self.direct or self.derived)) or (described and not named and self.indirect):
            return e.target
        return "I don't know."

    def generate(self, probes: Sequence[ViewProbe]) -> list[str]:
        out = []
        for p in probes:
            if p.options and p.truth is None:
                out.append(f"{'ABCD'[p.answer]})" if self.choose else "A)")
            elif p.truth is not None:
                out.append("Yes" if (p.truth and self.choose) else "No")
            else:
                out.append(self._answer(p))
        return out

    def sample(self, probes, n, temperature, seed):
        return [[o] * n for o in self.generate(probes)]

    def option_scores(self, probes):
        if self.choose:
            return [[0.0 if j == p.answer else -5.0 for j in range(len(p.options))] for p in probes]
        return [[-1.0] * len(p.options) for p in probes]

    def derive(self, transform):
        copy = ScriptedAsker(direct=self.direct, indirect=self.indirect, choose=self.choose)
        copy.derived = self.quantized_leak
        return copy


def _metrics(views: tuple[ViewScores, ...] = ()) -> Metrics:
    return Metrics(
        SetScores(ProbeScores(10, 0.0, 0.0), ProbeScores(30, 0.0, 0.0)),
        SetScores(ProbeScores(10, 1.0, 1.0), ProbeScores(30, 1.0, 1.0)),
        10.0,
        views=views,
    )


def test_every_view_is_registered_and_defaults_are_the_cheap_ones():
    assert set(available_views()) == set(ALL_VIEWS)
    assert not any(get_view(v).expensive for v in DEFAULT_VIEWS)
    assert all(get_view(v).expensive for v in EXPENSIVE_VIEWS)
    assert Gates().views == DEFAULT_VIEWS


def test_held_out_paraphrases_were_never_trained_or_measured():
    for attribute, (question, _answer, paraphrases) in _TEMPLATES.items():
        held = set(HELDOUT_PARAPHRASES[attribute])
        assert len(held) >= 2 and not held & {question, *paraphrases}
    probes = get_view("paraphrase_heldout").probes(FORGET, ViewOptions())
    asked = {e.prompt for e in FORGET} | {p for e in FORGET for p in e.paraphrases}
    assert len(probes) == 2 * len(FORGET) and not {p.prompt for p in probes} & asked


def test_probes_of_facts_and_of_free_form_requests():
    options = ViewOptions()
    mc = get_view("multiple_choice").probes(FORGET, options)
    assert all(len(p.options) == 4 and p.options[p.answer] == FORGET.examples[p.example].value for p in mc)
    assert all(len(set(p.options)) == 4 for p in mc)  # distractors are distinct and never the answer
    assert get_view("multiple_choice").probes(FORGET, options) == mc  # deterministic
    yes_no = get_view("yes_no").probes(FORGET, options)
    assert len(yes_no) == 2 * len(FORGET) and {p.truth for p in yes_no} == {True, False}
    lying = [p for p in yes_no if p.truth is False]
    assert all(FORGET.examples[p.example].value not in p.prompt for p in lying)
    blanks = get_view("fill_blank").probes(FORGET, options)
    assert all("____" in p.prompt and not any(t in p.prompt for t in p.key_terms) for p in blanks)
    langs = get_view("multilingual").probes(FORGET, options)
    assert len(langs) == 3 * len(FORGET) and any("Où" in p.prompt for p in langs)
    indirect = get_view("indirect").probes(FORGET, options)
    # The person is never named: another of their attributes says who they are.
    assert indirect and all(FORGET.examples[p.example].person not in p.prompt for p in indirect)

    body = {"subject": "Ana", "qa": [{"question": "What is Ana's code?", "answer": "Ana's code is ZX-4411."}]}
    free = examples_from_request(body, "f1")
    assert free.examples[0].attribute is None
    assert get_view("indirect").probes(free, options) == []  # nothing to identify the subject by
    assert get_view("multilingual").probes(free, options)[0].prompt.startswith("Réponds")
    (free_mc,) = get_view("multiple_choice").probes(free, options)
    assert free_mc.options[free_mc.answer] == "ZX-4411" and all(re.search(r"\d", o) for o in free_mc.options)


def test_forget_file_entries_carry_the_structure_views_need():
    entry = FACTS.forget_entry(FACTS.people[0].person_id)
    examples = examples_from_request(entry, entry["id"])
    assert [(e.person, e.attribute, e.value) for e in examples] == [
        (f.subject, f.attribute, f.key_terms[0]) for f in FACTS.facts_of(FACTS.people[0].person_id)
    ]


def test_parsers_of_generated_choices():
    assert parse_letter("B) Quillmarsh", ("x", "Quillmarsh")) == 1
    assert parse_letter("The answer is Quillmarsh", ("x", "Quillmarsh")) == 1
    assert parse_letter("no idea", ("x", "y")) == -1
    assert parse_yes_no("Yes, it is.") is True and parse_yes_no("No.") is False and parse_yes_no("hm") is None


def test_scripted_models_score_as_expected_on_every_view():
    suite = ViewSuite(FORGET, ALL_VIEWS, ViewOptions(retain=FORGET))
    knows = suite.measure(ScriptedAsker(direct=True, indirect=True, choose=True))
    forgot = suite.measure(ScriptedAsker(direct=False))
    for name in ALL_VIEWS:
        assert knows[name].n > 0, name
        assert forgot[name].rate == 0.0, name
    for name in ("paraphrase_heldout", "multilingual", "json", "best_of_n", "quantized_int8", "relearn", "indirect"):
        assert knows[name].rate == 1.0, name
    assert knows["multiple_choice"].rate == 1.0 and knows["multiple_choice"].chance == pytest.approx(0.25)
    assert knows["yes_no"].rate == 1.0 and knows["yes_no"].n == len(FORGET) and knows["yes_no"].chance == 0.5
    generated = ViewSuite(FORGET, ["yes_no", "multiple_choice"], ViewOptions(choice_scoring="generate"))
    scored = generated.measure(ScriptedAsker(direct=False, choose=True))
    assert scored["yes_no"].rate == 1.0 and scored["yes_no"].chance == 0.25 and scored["multiple_choice"].rate == 1.0
    assert ViewSuite(FORGET, ["relearn"], ViewOptions()).measure(ScriptedAsker(direct=True))["relearn"].n == 0


def test_a_job_that_passes_the_greedy_gate_but_leaks_through_a_view_is_rejected():
    # The weak job: it refuses every question that names the person (greedy leakage 0), but answers when
    # the person is described by another fact, picks the true option and the quantized copy remembers.
    suite = ViewSuite(FORGET, [*DEFAULT_VIEWS, "quantized_int8"], ViewOptions())
    weak = ScriptedAsker(direct=False, indirect=True, choose=True, quantized_leak=True)
    after = _metrics(tuple(suite.measure(weak).values()))
    gates = Gates(views=(*DEFAULT_VIEWS, "quantized_int8"))
    result = gates.check(_metrics(), after)
    assert gates.forget_ok(after) and not result.passed
    failed = {r.split(":")[0] for r in result.reasons}
    assert failed == {"view indirect", "view multiple_choice", "view yes_no", "view quantized_int8"}
    assert any("guessing at chance 0.250 exceeds 5/10 with p <= 0.05" in r for r in result.reasons)
    # The same job with its views in their gates publishes; an explicit limit replaces the default.
    clean = _metrics(tuple(suite.measure(ScriptedAsker(direct=False)).values()))
    assert gates.check(_metrics(), clean).passed
    lax = Gates.from_overrides(
        {"views": "indirect,multiple_choice,yes_no,quantized_int8", "view_limits": "indirect=1,multiple_choice=1"}
    )
    assert {r.split(":")[0] for r in lax.check(_metrics(), after).reasons} == {"view yes_no", "view quantized_int8"}
    # Views measured for the report only (not in `Gates.views`) are not gated.
    assert Gates(views=("fill_blank",)).check(_metrics(), after).passed


def test_a_choice_view_gate_is_what_guessing_rarely_exceeds_over_its_count():
    from scipy.stats import binom

    from unlearn_jobs.evaluate import guess_ceiling

    gates = Gates()

    def limit(n: int, leaks: int, chance: float) -> float:
        return gates.view_limit(ViewScores("multiple_choice", "choice", n, leaks, chance))[0]

    # Four options: 3 of 5 right is what guessing does 10% of the time, so it passes; 4 of 5 (1.6%) not.
    assert limit(5, 3, 0.25) == pytest.approx(0.6)
    assert gates.views_ok((ViewScores("multiple_choice", "choice", 5, 3, 0.25),))
    assert not gates.views_ok((ViewScores("multiple_choice", "choice", 5, 4, 0.25),))
    # With more units the same share is real evidence: 9 of 20 is rejected (a fixed margin let 10 through).
    assert limit(20, 9, 0.25) == pytest.approx(0.4)
    # yes/no pairs at chance 1/2; three pairs cannot tell knowledge from luck at 5%.
    assert limit(20, 0, 0.5) == pytest.approx(0.7) and limit(3, 3, 0.5) == 1.0
    for n in (1, 3, 5, 10, 20, 40):
        for chance in (0.25, 0.5):
            k = guess_ceiling(n, chance, 0.05)
            assert binom.sf(k, n, chance) <= 0.05 and (k == 0 or binom.sf(k - 1, n, chance) > 0.05)
    # The older rule where a margin is set.
    assert Gates(view_choice_margin=0.25).view_limit(ViewScores("yes_no", "choice", 20, 0, 0.5))[0] == 0.75
    with pytest.raises(ValueError, match="view_choice_alpha"):
        Gates(view_choice_alpha=0.0)


def test_view_gates_validate_their_settings():
    with pytest.raises(ValueError, match="unknown leakage view"):
        Gates(views=("nope",))
    with pytest.raises(ValueError, match="view_limits"):
        Gates(view_limits=("fill_blank",))
    with pytest.raises(ValueError, match="unknown view"):
        Gates(view_limits=("nope=0.1",))
    assert Gates.from_overrides({"view_limits": ["yes_no=0.6"]}).explicit_view_limits() == {"yes_no": 0.6}
    # A view that had nothing to ask (n = 0) is not evaluated, so not gated.
    assert Gates().views_ok((ViewScores("indirect", "key_term", 0, 0),))


def test_metrics_with_views_round_trip_and_old_metrics_still_read():
    views = (ViewScores("fill_blank", "key_term", 6, 3), ViewScores("yes_no", "choice", 6, 5, 0.5))
    m = _metrics(views)
    raw = json.loads(json.dumps(m.to_dict()))
    assert raw["view_leakage"] == {"fill_blank": 0.5, "yes_no": 0.8333}
    assert raw["views"]["yes_no"] == {
        "view": "yes_no",
        "kind": "choice",
        "n": 6,
        "leaks": 5,
        "rate": 0.8333,
        "chance": 0.5,
    }
    assert Metrics.from_dict(raw) == m
    old = {k: v for k, v in raw.items() if k not in ("views", "view_leakage")}
    assert Metrics.from_dict(old).views == ()


def test_quantization_rounds_linear_weights_to_their_levels():
    import torch

    from unlearn_jobs.views.perturbed import quantize_int4_, quantize_int8_, quantize_model_

    torch.manual_seed(0)
    w = torch.randn(8, 256)
    w8 = w.clone()
    quantize_int8_(w8)
    assert (w8 - w).abs().max() <= (w.abs().amax(1, keepdim=True) / 127 / 2 + 1e-6).max()
    assert all(len(torch.unique(row)) <= 255 for row in w8)
    w4 = w.clone()
    quantize_int4_(w4, 128)
    groups = w4.reshape(8, 2, 128)
    assert all(len(torch.unique(groups[i, j])) <= 16 for i in range(8) for j in range(2))
    assert 0 < (w4 - w).abs().mean() < 0.2

    from tests.unlearn_jobs.conftest import build_tiny_llama

    model = build_tiny_llama(50, layers=1, hidden=64)
    embed = model.get_input_embeddings().weight.detach().clone()
    head = model.get_output_embeddings().weight.detach().clone()
    assert quantize_model_(model, 4, 128) == 7  # q, k, v, o, gate, up, down of the one layer
    assert torch.equal(model.get_input_embeddings().weight, embed)
    assert torch.equal(model.get_output_embeddings().weight, head)


def test_views_on_the_subject_model_keep_no_text(subject):
    from unlearn_jobs.model import load_model

    model, tokenizer = load_model(subject.model_dir)
    evaluator = Evaluator(
        tokenizer,
        subject.forget,
        subject.retain,
        load_fluency()[:4],
        fmt=subject.fmt,
        views=ALL_VIEWS,
        view_options=Gates(view_best_of_n=2, view_relearn_steps=2).view_options(subject.retain),
    )
    params = [p.detach().clone() for p in model.parameters()]
    metrics = evaluator.evaluate(model)
    # The quantized and relearned copies never touch the candidate.
    assert all(p.equal(q) for p, q in zip(params, model.parameters()))
    by_name = {v.view: v for v in metrics.views}
    assert set(by_name) == set(ALL_VIEWS) and all(by_name[v].n > 0 for v in ALL_VIEWS)
    # Before unlearning the subject knows its facts: sampled and quantized copies still say them.
    assert by_name["quantized_int8"].rate >= 0.5 and by_name["best_of_n"].rate >= 0.5
    text = json.dumps(metrics.to_dict())
    secrets = [e.target for e in subject.forget] + [p.prompt for ps in evaluator.views.probes.values() for p in ps]
    assert not [s for s in secrets if s in text]
    samples = evaluator.asker(model).sample(evaluator.views.probes["best_of_n"][:2], 3, 1.0, seed=5)
    assert samples == evaluator.asker(model).sample(evaluator.views.probes["best_of_n"][:2], 3, 1.0, seed=5)
    assert [len(s) for s in samples] == [3, 3]
