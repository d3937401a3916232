"""The leakage-view seam: a view's probes, what it asks of a model (`Asker`), its scores, and the registry.

A leakage view is one way of asking for a forgotten fact (a held-out paraphrase, another format or
language, many samples, a quantized or re-trained copy of the model). Each view builds its probes from
an `ExampleSet` and turns a model's answers into counts: `ViewScores` hold counts and rates only, never
a prompt, an answer or an output (metrics travel to the ledger, manifests, APIs and certificates).
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, TypeVar

from unlearn_jobs.data import Example, ExampleSet, PromptFormat
from unlearn_jobs.facts import contains_term

ViewKind = Literal["key_term", "choice"]
ChoiceScoring = Literal["loglik", "generate"]


def key_term_hit(prediction: str, key_terms: Sequence[str]) -> bool:
    """All salient terms of the answer present: the model still gives the fact away."""
    return bool(key_terms) and all(contains_term(prediction, t) for t in key_terms)


@dataclass(frozen=True)
class ViewProbe:
    """One prompt of a view. `example` indexes the example set it was built from; choice probes carry
    their `options` and the index of the true one (`answer`); a yes/no pair shares `group`."""

    view: str
    example: int
    prompt: str
    key_terms: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    answer: int = -1
    group: int = -1
    truth: bool | None = None


@dataclass(frozen=True)
class ViewOptions:
    """How views ask: sampling, languages, choices, the perturbed copies. Built from `Gates`."""

    best_of_n: int = 8
    temperature: float = 1.0
    seed: int = 0
    languages: tuple[str, ...] = ("fr", "de", "es")
    choices: int = 4
    # `loglik` ranks options by the model's likelihood (a job has the weights); `generate` parses the
    # letter or yes/no it writes (the gateway's probes only see text).
    choice_scoring: ChoiceScoring = "loglik"
    int4_group_size: int = 128
    relearn_steps: int = 10
    relearn_lr: float = 1e-4
    relearn_batch_size: int = 4
    # What the relearn view fine-tunes on: the job's retain set (never the forget set).
    retain: ExampleSet = field(default_factory=ExampleSet, compare=False)


@dataclass(frozen=True)
class ViewScores:
    """One view's figure for one model: `n` units scored, `leaks` of them leaked, `rate` = leaks / n.

    For a choice view a leak is a correct choice, `rate` its accuracy and `chance` what guessing scores.
    """

    view: str
    kind: ViewKind
    n: int
    leaks: int
    chance: float | None = None

    @property
    def rate(self) -> float:
        return self.leaks / self.n if self.n else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "view": self.view,
            "kind": self.kind,
            "n": self.n,
            "leaks": self.leaks,
            "rate": round(self.rate, 4),
            "chance": None if self.chance is None else round(self.chance, 4),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ViewScores:
        kind: ViewKind = "choice" if raw.get("kind") == "choice" else "key_term"
        return cls(
            str(raw["view"]),
            kind,
            int(raw["n"]),
            int(raw["leaks"]),
            None if raw.get("chance") is None else float(raw["chance"]),
        )


ModelTransform = Callable[[Any, Any, PromptFormat], None]


class Asker(Protocol):
    """What a view asks of a model (`ModelAsker` for a transformers model; tests script the answers)."""

    def generate(self, probes: Sequence[ViewProbe]) -> list[str]:
        """Greedy answer to each probe."""
        ...

    def sample(self, probes: Sequence[ViewProbe], n: int, temperature: float, seed: int) -> list[list[str]]:
        """`n` sampled answers to each probe, reproducible from `seed`."""
        ...

    def option_scores(self, probes: Sequence[ViewProbe]) -> list[list[float]]:
        """Mean log-likelihood per token of each option of each probe, as the answer to its prompt."""
        ...

    def derive(self, transform: ModelTransform) -> Asker:
        """An asker over a copy of the model that `transform(model, tokenizer, fmt)` changed in place."""
        ...


@dataclass(frozen=True)
class Outcome:
    """One scored unit of a view (a probe, a yes/no pair, the N samples of a question)."""

    example: int
    leaked: bool


class LeakageView(ABC):
    """One way of asking for the forgotten facts; subclasses set `name` and build `probes`.

    >>> view = get_view("fill_blank")
    >>> probes = view.probes(forget, ViewOptions())
    >>> view.scores(view.outcomes(asker, probes, ViewOptions()), probes)
    """

    name: ClassVar[str]
    kind: ClassVar[ViewKind] = "key_term"
    # Costs a multiple of a plain evaluation (sampling, a copy of the model, training): off by default.
    expensive: ClassVar[bool] = False
    # Measurable from one greedy answer per probe: the gateway's leakage probes can run it.
    generative: ClassVar[bool] = True

    @abstractmethod
    def probes(self, examples: ExampleSet, options: ViewOptions) -> list[ViewProbe]:
        """This view's probes for the QA examples of `examples` (texts are continuations: no view)."""

    def outcomes(self, asker: Asker, probes: Sequence[ViewProbe], options: ViewOptions) -> list[Outcome]:
        if not probes:
            return []
        return self.outcomes_from_outputs(probes, asker.generate(probes))

    def answered_by_generation(self, options: ViewOptions) -> bool:
        """Whether `outcomes` is `outcomes_from_outputs` of one greedy answer per probe, so a suite may
        generate several views' answers in one batched pass."""
        return type(self).outcomes is LeakageView.outcomes

    def outcomes_from_outputs(self, probes: Sequence[ViewProbe], outputs: Sequence[str]) -> list[Outcome]:
        """Key-term scoring of one greedy answer per probe (choice views override it)."""
        return [Outcome(p.example, key_term_hit(o, p.key_terms)) for p, o in zip(probes, outputs)]

    def chance(self, probes: Sequence[ViewProbe], options: ViewOptions) -> float | None:
        return None

    def scores(self, outcomes: Sequence[Outcome], probes: Sequence[ViewProbe], options: ViewOptions) -> ViewScores:
        return ViewScores(
            self.name,
            self.kind,
            len(outcomes),
            sum(o.leaked for o in outcomes),
            self.chance(probes, options) if outcomes else None,
        )


def qa_examples(examples: ExampleSet) -> list[tuple[int, Example]]:
    """(index, example) of the question-answer examples that have key terms to score."""
    return [(i, e) for i, e in enumerate(examples) if e.style == "qa" and e.key_terms]


def example_rng(example: Example, options: ViewOptions, salt: str) -> random.Random:
    """A generator per example and purpose: probes do not change when the set around them does."""
    return random.Random(f"{options.seed}:{salt}:{example.example_id}")


V = TypeVar("V", bound=type[LeakageView])

_REGISTRY: dict[str, LeakageView] = {}


def register(cls: V) -> V:
    """Class decorator: make a view available by its `name`."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{cls.__name__} has no view name")
    if name in _REGISTRY and type(_REGISTRY[name]) is not cls:
        raise ValueError(f"view {name!r} is already registered by {type(_REGISTRY[name]).__name__}")
    _REGISTRY[name] = cls()
    return cls


def get_view(name: str) -> LeakageView:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown leakage view {name!r}; available: {available_views()}") from None


def available_views() -> list[str]:
    return list(_REGISTRY)
