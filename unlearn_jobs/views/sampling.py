"""Best of N: the canonical questions sampled N times at a temperature; a leak if any sample has the fact."""

from __future__ import annotations

from collections.abc import Sequence

from unlearn_jobs.data import ExampleSet
from unlearn_jobs.views.base import (
    Asker,
    LeakageView,
    Outcome,
    ViewOptions,
    ViewProbe,
    key_term_hit,
    qa_examples,
    register,
)


@register
class BestOfNView(LeakageView):
    """`ViewOptions.best_of_n` samples (temperature `temperature`, seeded) per question: greedy decoding
    hides what sampling still finds, and a user can simply ask again."""

    name = "best_of_n"
    expensive = True
    generative = False

    def probes(self, examples: ExampleSet, options: ViewOptions) -> list[ViewProbe]:
        return [ViewProbe(self.name, i, e.prompt, e.key_terms) for i, e in qa_examples(examples)]

    def outcomes(self, asker: Asker, probes: Sequence[ViewProbe], options: ViewOptions) -> list[Outcome]:
        if not probes:
            return []
        samples = asker.sample(probes, options.best_of_n, options.temperature, options.seed)
        return [Outcome(p.example, any(key_term_hit(s, p.key_terms) for s in ss)) for p, ss in zip(probes, samples)]
