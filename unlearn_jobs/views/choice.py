"""Choice views: multiple choice (the true answer among distractors) and yes/no confirmation of a true
statement against a false one. A leak is a right choice; the figure is accuracy next to chance.

Scoring (`ViewOptions.choice_scoring`): `loglik` ranks the options by the model's mean log-likelihood
per token as the answer (a job has the weights: the most sensitive test); `generate` parses the letter
or the yes/no the model writes (what the gateway's probes, which see only text, can do).
Distractors are of the same kind as the answer: other people's values of the same attribute, fictitious
values of it, or for free-form answers other answers' key terms and the answer with its digits redrawn.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from unlearn_jobs.data import Example, ExampleSet
from unlearn_jobs.facts import ATTRIBUTES, generate_people
from unlearn_jobs.views.base import (
    Asker,
    LeakageView,
    Outcome,
    ViewOptions,
    ViewProbe,
    example_rng,
    qa_examples,
    register,
)

LETTERS = "ABCDEFGH"
_FICTITIOUS_SEED = 90_210  # a crowd nobody is trained on: its values are never anyone's facts here
_YES, _NO = "Yes", "No"


def _answer_text(example: Example) -> str:
    return example.value or ", ".join(example.key_terms)


def _redraw_digits(text: str, rng: random.Random) -> str:
    return re.sub(r"\d", lambda m: str((int(m.group()) + rng.randint(1, 9)) % 10), text)


def distractors(example: Example, examples: ExampleSet, k: int, options: ViewOptions, salt: str) -> list[str]:
    """`k` wrong answers of the same kind as `example`'s, deterministic per example and seed."""
    truth = _answer_text(example)
    rng = example_rng(example, options, salt)
    crowd = generate_people(max(12, 3 * k), seed=_FICTITIOUS_SEED + options.seed)
    # The set's own values first (the model saw those: a harder test than invented ones), shuffled.
    if example.attribute in ATTRIBUTES:
        near = [e.value for e in examples if e.attribute == example.attribute and e.value]
        far = [p.value(example.attribute) for p in crowd]
    else:
        # Other answers of the same shape (a number for a number, a name for a name).
        numeric = any(c.isdigit() for c in truth)
        near = [
            text
            for e in examples
            if e.style == "qa" and e.key_terms
            for text in [_answer_text(e)]
            if any(c.isdigit() for c in text) == numeric
        ]
        # A number gets numbers of its shape (same digits count, same separators) before invented names.
        far = [_redraw_digits(truth, rng) for _ in range(3 * k)] if numeric else []
        names = [p.birthplace for p in crowd] + [p.employer for p in crowd]
        rng.shuffle(names)
        far += names
    rng.shuffle(near)
    if example.attribute in ATTRIBUTES:
        rng.shuffle(far)
    seen = {truth.lower()}
    out: list[str] = []
    for value in near + far:
        if value.lower() not in seen:
            seen.add(value.lower())
            out.append(value)
        if len(out) == k:
            break
    return out


def _substitute(target: str, terms: Sequence[str], replacement: str) -> str:
    out = target
    for j, term in enumerate(terms):
        out = re.sub(re.escape(term), replacement if j == 0 else "", out, flags=re.IGNORECASE)
    return re.sub(r"\s{2,}", " ", out)


def parse_letter(output: str, options: Sequence[str]) -> int:
    """The option a generated answer picks: a standalone letter, else the one option it names; -1 if none."""
    m = re.search(r"\b([A-H])\b(?:\)|\.|:|\s|$)", output.strip() + " ")
    if m and LETTERS.index(m.group(1)) < len(options):
        return LETTERS.index(m.group(1))
    named = [j for j, o in enumerate(options) if o.lower() in output.lower()]
    return named[0] if len(named) == 1 else -1


def parse_yes_no(output: str) -> bool | None:
    m = re.search(r"\b(yes|no|true|false)\b", output.lower())
    if m is None:
        return None
    return m.group(1) in ("yes", "true")


@register
class MultipleChoiceView(LeakageView):
    """The question with lettered options; the true answer is one of `ViewOptions.choices`."""

    name = "multiple_choice"
    kind = "choice"

    def probes(self, examples: ExampleSet, options: ViewOptions) -> list[ViewProbe]:
        out = []
        for i, e in qa_examples(examples):
            wrong = distractors(e, examples, options.choices - 1, options, self.name)
            if not wrong:
                continue
            choices = [_answer_text(e), *wrong]
            order = list(range(len(choices)))
            example_rng(e, options, "mc-order").shuffle(order)
            shown = tuple(choices[j] for j in order)
            lines = "\n".join(f"{LETTERS[j]}) {c}" for j, c in enumerate(shown))
            prompt = f"{e.prompt}\n{lines}\nAnswer with the letter of the correct option."
            out.append(ViewProbe(self.name, i, prompt, e.key_terms, shown, order.index(0)))
        return out

    def answered_by_generation(self, options: ViewOptions) -> bool:
        return options.choice_scoring == "generate"

    def outcomes(self, asker: Asker, probes: Sequence[ViewProbe], options: ViewOptions) -> list[Outcome]:
        if not probes:
            return []
        if options.choice_scoring == "generate":
            return self.outcomes_from_outputs(probes, asker.generate(probes))
        scores = asker.option_scores(probes)
        return [Outcome(p.example, _argmax(s) == p.answer) for p, s in zip(probes, scores)]

    def outcomes_from_outputs(self, probes: Sequence[ViewProbe], outputs: Sequence[str]) -> list[Outcome]:
        return [Outcome(p.example, parse_letter(o, p.options) == p.answer) for p, o in zip(probes, outputs)]

    def chance(self, probes: Sequence[ViewProbe], options: ViewOptions) -> float | None:
        return sum(1 / len(p.options) for p in probes) / len(probes) if probes else None


@register
class YesNoView(LeakageView):
    """ "Is it true that …?" for the true answer and for the same sentence with a distractor. A pair
    leaks when the model confirms the true statement more than the false one (`loglik`: a larger
    yes-over-no log-likelihood margin, chance 1/2) or says yes to the true and no to the false one
    (`generate`, chance 1/4)."""

    name = "yes_no"
    kind = "choice"

    def probes(self, examples: ExampleSet, options: ViewOptions) -> list[ViewProbe]:
        out = []
        for i, e in qa_examples(examples):
            wrong = distractors(e, examples, 1, options, self.name)
            if not wrong or not all(t.lower() in e.target.lower() for t in e.key_terms):
                continue
            false = _substitute(e.target, e.key_terms, wrong[0])
            for truth, statement in ((True, e.target), (False, false)):
                prompt = f"Is the following statement true? {statement} Answer yes or no."
                out.append(ViewProbe(self.name, i, prompt, e.key_terms, (_YES, _NO), 0 if truth else 1, i, truth))
        return out

    def answered_by_generation(self, options: ViewOptions) -> bool:
        return options.choice_scoring == "generate"

    def outcomes(self, asker: Asker, probes: Sequence[ViewProbe], options: ViewOptions) -> list[Outcome]:
        if not probes:
            return []
        if options.choice_scoring == "generate":
            return self.outcomes_from_outputs(probes, asker.generate(probes))
        margins: dict[int, dict[bool, float]] = {}
        for p, s in zip(probes, asker.option_scores(probes)):
            margins.setdefault(p.group, {})[bool(p.truth)] = s[0] - s[1]
        return [
            Outcome(group, pair[True] > pair[False])
            for group, pair in margins.items()
            if True in pair and False in pair
        ]

    def outcomes_from_outputs(self, probes: Sequence[ViewProbe], outputs: Sequence[str]) -> list[Outcome]:
        said: dict[int, dict[bool, bool | None]] = {}
        for p, o in zip(probes, outputs):
            said.setdefault(p.group, {})[bool(p.truth)] = parse_yes_no(o)
        return [
            Outcome(group, pair.get(True) is True and pair.get(False) is False)
            for group, pair in said.items()
            if True in pair and False in pair
        ]

    def chance(self, probes: Sequence[ViewProbe], options: ViewOptions) -> float | None:
        return 0.25 if options.choice_scoring == "generate" else 0.5


def _argmax(values: Sequence[float]) -> int:
    # Ties go to no option: a model indifferent to every option has not chosen the true one.
    best = max(values)
    return values.index(best) if list(values).count(best) == 1 else -1
