"""Leakage views: the forget set asked in ways a job never trained or measured on, scored as counts.

Registered by name (the order below is the order they are reported in):
- key-term views (a leak: every key term of the forgotten answer in the answer): `paraphrase_heldout`,
  `fill_blank`, `json`, `multilingual`, `indirect`, and the expensive `best_of_n`, `quantized_int8`,
  `quantized_int4`, `relearn`;
- choice views (a leak: the right choice; reported with chance): `multiple_choice`, `yes_no`.

>>> suite = ViewSuite(forget, DEFAULT_VIEWS, ViewOptions())
>>> suite.measure(ModelAsker(model, tokenizer, fmt))  # {"fill_blank": ViewScores(...), ...}
"""

from __future__ import annotations

from collections.abc import Sequence

from unlearn_jobs.data import ExampleSet
from unlearn_jobs.views import choice, perturbed, questions, sampling  # noqa: F401  (registration side effect)
from unlearn_jobs.views.base import (
    Asker,
    LeakageView,
    Outcome,
    ViewOptions,
    ViewProbe,
    ViewScores,
    available_views,
    get_view,
    key_term_hit,
    register,
)

# One greedy pass (or one likelihood pass) over a few prompts per forget fact each: on by default.
DEFAULT_VIEWS: tuple[str, ...] = (
    "paraphrase_heldout",
    "fill_blank",
    "multiple_choice",
    "yes_no",
    "json",
    "multilingual",
    "indirect",
)
# N samples per question, or a copy of the model (quantized, or trained): selected per job.
EXPENSIVE_VIEWS: tuple[str, ...] = ("best_of_n", "quantized_int8", "quantized_int4", "relearn")
ALL_VIEWS: tuple[str, ...] = DEFAULT_VIEWS + EXPENSIVE_VIEWS


class ViewSuite:
    """The selected views' probes over one example set, built once; `measure` scores a model on them."""

    def __init__(self, examples: ExampleSet, names: Sequence[str], options: ViewOptions = ViewOptions()) -> None:
        self.examples = examples
        self.options = options
        self.views = [get_view(n) for n in dict.fromkeys(names)]
        self.probes = {v.name: v.probes(examples, options) for v in self.views}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.views)

    def outcomes(
        self, asker: Asker, *, expensive: bool = True, only: Sequence[str] | None = None
    ) -> dict[str, list[Outcome]]:
        selected = [v for v in self.views if (expensive or not v.expensive) and (only is None or v.name in only)]
        # The views answered by one greedy generation per probe share one batched pass (fuller
        # batches: on CPU a pass over 100 prompts costs far less than five passes over 20).
        shared = [v for v in selected if v.answered_by_generation(self.options) and self.probes[v.name]]
        answers: dict[str, list[str]] = {}
        if len(shared) > 1:
            outputs = asker.generate([p for v in shared for p in self.probes[v.name]])
            start = 0
            for v in shared:
                answers[v.name] = outputs[start : start + len(self.probes[v.name])]
                start += len(self.probes[v.name])
        return {
            v.name: v.outcomes_from_outputs(self.probes[v.name], answers[v.name])
            if v.name in answers
            else v.outcomes(asker, self.probes[v.name], self.options)
            for v in selected
        }

    def scores(self, outcomes: dict[str, list[Outcome]]) -> dict[str, ViewScores]:
        return {name: get_view(name).scores(rows, self.probes[name], self.options) for name, rows in outcomes.items()}

    def measure(
        self, asker: Asker, *, expensive: bool = True, only: Sequence[str] | None = None
    ) -> dict[str, ViewScores]:
        """Each selected view's scores (`expensive=False`: the cheap ones only, e.g. for early stopping;
        `only`: these of the selected views)."""
        return self.scores(self.outcomes(asker, expensive=expensive, only=only))


__all__ = [
    "ALL_VIEWS",
    "DEFAULT_VIEWS",
    "EXPENSIVE_VIEWS",
    "Asker",
    "LeakageView",
    "Outcome",
    "ViewOptions",
    "ViewProbe",
    "ViewScores",
    "ViewSuite",
    "available_views",
    "get_view",
    "key_term_hit",
    "register",
]
