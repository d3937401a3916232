"""Leakage and utility metrics (greedy generations, key terms, ROUGE-L, guard score, perplexity) and the gates."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from unlearn_jobs.config import OverridableConfig
from unlearn_jobs.data import Example, ExampleSet, PromptFormat, collate, encode_texts, pad_id_of
from unlearn_jobs.guard_score import GuardScorer
from unlearn_jobs.views import ALL_VIEWS, DEFAULT_VIEWS, ViewOptions, ViewScores, ViewSuite, key_term_hit

_ROUGE: Any = None


def rouge_l_recall(prediction: str, reference: str) -> float:
    """ROUGE-L recall of `reference` in `prediction` (how much of the answer came back)."""
    global _ROUGE
    if _ROUGE is None:
        from rouge_score import rouge_scorer

        _ROUGE = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return float(_ROUGE.score(reference, prediction)["rougeL"].recall)


__all__ = ["Evaluator", "GateResult", "Gates", "Metrics", "ProbeScores", "SetScores", "key_term_hit", "rouge_l_recall"]


@dataclass(frozen=True)
class ProbeScores:
    """Scores of one kind of prompt (canonical questions or paraphrases) over a set."""

    n: int
    rouge_l: float
    hit_rate: float
    guard: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "rouge_l": self.rouge_l, "hit_rate": self.hit_rate, "guard": self.guard}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ProbeScores:
        return cls(
            int(raw["n"]),
            float(raw["rouge_l"]),
            float(raw["hit_rate"]),
            None if raw.get("guard") is None else float(raw["guard"]),
        )


@dataclass(frozen=True)
class SetScores:
    """Questions and (when the set has them) paraphrases, scored separately."""

    questions: ProbeScores
    paraphrases: ProbeScores | None = None

    @property
    def pooled_hit_rate(self) -> float:
        parts = [self.questions] + ([self.paraphrases] if self.paraphrases and self.paraphrases.n else [])
        total = sum(p.n for p in parts)
        return sum(p.hit_rate * p.n for p in parts) / total if total else 0.0

    @property
    def pooled_guard(self) -> float | None:
        """The guard score over questions and paraphrases together (None without a guard scorer)."""
        parts = [
            (p.guard, p.n) for p in (self.questions, self.paraphrases) if p is not None and p.n and p.guard is not None
        ]
        total = sum(n for _, n in parts)
        return sum(guard * n for guard, n in parts) / total if total else None

    @property
    def worst_hit_rate(self) -> float:
        """Leakage through the weakest phrasing: the last facts to go leak through paraphrases."""
        rates = [self.questions.hit_rate]
        if self.paraphrases and self.paraphrases.n:
            rates.append(self.paraphrases.hit_rate)
        return max(rates)

    def to_dict(self) -> dict[str, Any]:
        return {
            "questions": self.questions.to_dict(),
            "paraphrases": self.paraphrases.to_dict() if self.paraphrases else None,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> SetScores:
        return cls(
            ProbeScores.from_dict(raw["questions"]),
            ProbeScores.from_dict(raw["paraphrases"]) if raw.get("paraphrases") else None,
        )


@dataclass(frozen=True)
class SampleScore:
    """How one forget probe came back, as scores only: a job's metrics travel to the ledger, every
    manifest, the APIs and certificates, so they never carry a prompt, an answer or a model output.

    `index` is the probe's position in the evaluation's forget probes (question, then its paraphrases).
    """

    index: int
    paraphrase: bool
    key_term_hit: bool
    rouge_l: float
    guard: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "paraphrase": self.paraphrase,
            "key_term_hit": self.key_term_hit,
            "rouge_l": round(self.rouge_l, 4),
            "guard": self.guard,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> SampleScore:
        return cls(
            int(raw["index"]),
            bool(raw.get("paraphrase", False)),
            bool(raw["key_term_hit"]),
            float(raw["rouge_l"]),
            None if raw.get("guard") is None else float(raw["guard"]),
        )


def _sample_scores(raw: Any) -> tuple[SampleScore, ...]:
    """Scored samples from stored metrics; rows written before samples were scores-only (`[prompt,
    output]` pairs) are dropped, never read back."""
    return tuple(SampleScore.from_dict(s) for s in raw or () if isinstance(s, Mapping))


def redact_metrics(raw: Any) -> Any:
    """Stored metrics (a `Metrics.to_dict()`, or a job's `{"before": …, "after": …}`) without the text
    samples that older versions kept: what the APIs, manifests and certificates may show."""
    if not isinstance(raw, Mapping):
        return raw
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "samples":
            out[key] = [s.to_dict() for s in _sample_scores(value)]
        elif isinstance(value, Mapping):
            out[key] = redact_metrics(value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class Metrics:
    """One evaluation of a model: forget leakage, retain utility, fluency."""

    forget: SetScores
    retain: SetScores
    perplexity: float
    samples: tuple[SampleScore, ...] = field(default=(), compare=False)
    # Leakage views (counts and rates per view); empty for metrics stored before views existed.
    views: tuple[ViewScores, ...] = ()

    def view(self, name: str) -> ViewScores | None:
        return next((v for v in self.views if v.view == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "forget": self.forget.to_dict(),
            "retain": self.retain.to_dict(),
            "perplexity": self.perplexity,
            "forget_leakage": self.forget.worst_hit_rate,
            "retain_hit_rate": self.retain.pooled_hit_rate,
            # Share of raw generations the gateway's guard would stop (None: no guard scorer).
            "forget_guard_hit_rate": self.forget.pooled_guard,
            "retain_guard_hit_rate": self.retain.pooled_guard,
            "samples": [s.to_dict() for s in self.samples],
            "views": {v.view: v.to_dict() for v in self.views},
            # The figure each view's gate compares (key-term hit rate, or accuracy of a choice view).
            "view_leakage": {v.view: round(v.rate, 4) for v in self.views if v.n},
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Metrics:
        views = raw.get("views") or {}
        return cls(
            SetScores.from_dict(raw["forget"]),
            SetScores.from_dict(raw["retain"]),
            float(raw["perplexity"]),
            _sample_scores(raw.get("samples")),
            tuple(ViewScores.from_dict(v) for v in views.values() if isinstance(v, Mapping)),
        )


@dataclass(frozen=True)
class Gates(OverridableConfig):
    """What a job must show before it may publish weights: greedy forget leakage, retain utility,
    perplexity, and every evaluated leakage view within its gate (`view_limit`).

    >>> Gates.from_overrides({"forget_hit_rate_max": "0.1"}).check(before, after).passed
    >>> Gates.from_overrides({"views": "fill_blank,best_of_n", "view_limits": "best_of_n=0.4"})
    """

    # Forget leakage: key-term hit rate over the worse of questions and paraphrases.
    forget_hit_rate_max: float = 0.2
    # Retain facts (questions and paraphrases pooled) must keep this share of the parent's hit rate.
    retain_hit_rate_min_ratio: float = 0.9
    # Generic perplexity barely moves even when facts collapse, so it is a backstop, not the utility gate.
    perplexity_max_ratio: float = 1.2
    include_paraphrases: bool = True
    # Leakage views the job evaluates and gates (unlearn_jobs.views; docs/unlearning.md). The default
    # is the cheap ones; best_of_n, quantized_int8, quantized_int4 and relearn are selected per job.
    views: tuple[str, ...] = DEFAULT_VIEWS
    # A view's gate is its reference plus a margin. A live job has no retrained anchor to measure, so
    # the reference of a key-term view is this absolute rate (what a model that never saw the facts
    # scores on fictitious values: ~0; the benchmark measures the anchor) and of a choice view chance.
    view_reference: float = 0.0
    view_margin: float = 0.2
    # Sampling N times also finds values a model guesses from a small closed set (jobs, years).
    view_best_of_n_margin: float = 0.3
    # A choice view's gate is what guessing exceeds with probability at most this (one-sided binomial
    # test over the view's n units at its chance rate), so it follows the count: 3 of 5 four-option
    # questions pass (guessing gets there 10% of the time), 9 of 20 do not (4%). A fixed margin did
    # not: chance + 0.25 rejected ~15% of clean jobs on 3 facts, and let 10 of 20 through.
    view_choice_alpha: float = 0.05
    # The older rule, chance + this margin, where set (e.g. 1.0 turns the choice gates off).
    view_choice_margin: float | None = None
    # Explicit gates that replace the default, as `name=limit` (e.g. "yes_no=0.6").
    view_limits: tuple[str, ...] = ()
    view_best_of_n: int = 8
    view_temperature: float = 1.0
    view_seed: int = 0
    view_languages: tuple[str, ...] = ("fr", "de", "es")
    view_choices: int = 4
    view_relearn_steps: int = 10
    view_relearn_lr: float = 1e-4
    view_int4_group_size: int = 128

    def validate(self) -> None:
        if not 0.0 <= self.forget_hit_rate_max <= 1.0:
            raise ValueError("forget_hit_rate_max must be in [0, 1]")
        unknown = [v for v in self.views if v not in ALL_VIEWS]
        if unknown:
            raise ValueError(f"unknown leakage view(s) {unknown}; available: {list(ALL_VIEWS)}")
        margins = (self.view_reference, self.view_margin, self.view_best_of_n_margin)
        for value in (*margins, *(() if self.view_choice_margin is None else (self.view_choice_margin,))):
            if not 0.0 <= value <= 1.0:
                raise ValueError("view_reference and the view margins must be in [0, 1]")
        if not 0.0 < self.view_choice_alpha <= 0.5:
            raise ValueError("view_choice_alpha must be in (0, 0.5]")
        limits = self.explicit_view_limits()  # raises for a malformed entry
        if any(v not in ALL_VIEWS for v in limits):
            raise ValueError(f"view_limits names an unknown view; available: {list(ALL_VIEWS)}")
        if self.view_best_of_n < 1 or self.view_temperature <= 0 or not 2 <= self.view_choices <= 8:
            raise ValueError("view_best_of_n >= 1, view_temperature > 0 and view_choices in 2..8 required")
        if self.view_relearn_steps < 0 or not 0 < self.view_relearn_lr < 10 or self.view_int4_group_size < 1:
            raise ValueError("view_relearn_steps >= 0, view_relearn_lr in (0, 10), view_int4_group_size >= 1")
        if not 0.0 <= self.retain_hit_rate_min_ratio <= 1.0:
            raise ValueError("retain_hit_rate_min_ratio must be in [0, 1]")
        if self.perplexity_max_ratio < 1.0:
            raise ValueError("perplexity_max_ratio must be >= 1")

    def leakage(self, forget: SetScores) -> float:
        return forget.worst_hit_rate if self.include_paraphrases else forget.questions.hit_rate

    def forget_leakage(self, m: Metrics) -> float:
        return self.leakage(m.forget)

    def retain_rate(self, m: Metrics) -> float:
        return m.retain.pooled_hit_rate if self.include_paraphrases else m.retain.questions.hit_rate

    def forget_ok(self, m: Metrics) -> bool:
        return self.forget_leakage(m) <= self.forget_hit_rate_max

    def explicit_view_limits(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for item in self.view_limits:
            name, sep, value = item.partition("=")
            try:
                limit = float(value)
            except ValueError:
                limit = -1.0
            if not sep or not 0.0 <= limit <= 1.0:
                raise ValueError(f"view_limits entries are name=limit with limit in [0, 1], got {item!r}")
            out[name.strip()] = limit
        return out

    def view_options(self, retain: ExampleSet = ExampleSet()) -> ViewOptions:
        """How the views ask, from these gates; `retain` is what the relearn view trains on."""
        return ViewOptions(
            best_of_n=self.view_best_of_n,
            temperature=self.view_temperature,
            seed=self.view_seed,
            languages=self.view_languages,
            choices=self.view_choices,
            int4_group_size=self.view_int4_group_size,
            relearn_steps=self.view_relearn_steps,
            relearn_lr=self.view_relearn_lr,
            retain=retain,
        )

    def view_limit(self, scores: ViewScores) -> tuple[float, str]:
        """The most leakage `scores.view` may show, and how that limit was set (for the gate's reason)."""
        explicit = self.explicit_view_limits().get(scores.view)
        if explicit is not None:
            return explicit, "view_limits"
        if scores.chance is not None:
            if self.view_choice_margin is not None:
                return min(1.0, scores.chance + self.view_choice_margin), (
                    f"chance {scores.chance:.3f} + margin {self.view_choice_margin:.3f}"
                )
            allowed = guess_ceiling(scores.n, scores.chance, self.view_choice_alpha)
            return allowed / scores.n if scores.n else 1.0, (
                f"guessing at chance {scores.chance:.3f} exceeds {allowed}/{scores.n} "
                f"with p <= {self.view_choice_alpha:g}"
            )
        margin = self.view_best_of_n_margin if scores.view == "best_of_n" else self.view_margin
        return min(1.0, self.view_reference + margin), f"reference {self.view_reference:.3f} + margin {margin:.3f}"

    def view_reasons(self, views: Sequence[ViewScores]) -> list[str]:
        """One reason per gated view (in `views`, with n > 0) whose leakage is over its gate; views measured
        for the report only (`JobSpec.report_views`) are not gated."""
        reasons = []
        for v in views:
            if not v.n or v.view not in self.views:
                continue
            limit, why = self.view_limit(v)
            if v.rate > limit + 1e-9:
                what = "accuracy" if v.kind == "choice" else "leakage"
                reasons.append(f"view {v.view}: {what} {v.rate:.3f} > {limit:.3f} ({why}; {v.leaks}/{v.n})")
        return reasons

    def views_ok(self, views: Sequence[ViewScores]) -> bool:
        return not self.view_reasons(views)

    def check(self, before: Metrics, after: Metrics) -> GateResult:
        reasons: list[str] = []
        leak = self.forget_leakage(after)
        if leak > self.forget_hit_rate_max:
            reasons.append(f"forget leakage {leak:.3f} > {self.forget_hit_rate_max:.3f}")
        floor = self.retain_hit_rate_min_ratio * self.retain_rate(before)
        kept = self.retain_rate(after)
        if kept < floor:
            reasons.append(
                f"retain hit rate {kept:.3f} < {floor:.3f} "
                f"({self.retain_hit_rate_min_ratio:.2f} x {self.retain_rate(before):.3f})"
            )
        ceiling = self.perplexity_max_ratio * before.perplexity
        if not math.isfinite(after.perplexity) or after.perplexity > ceiling:
            reasons.append(
                f"perplexity {after.perplexity:.2f} > {ceiling:.2f} "
                f"({self.perplexity_max_ratio:.2f} x {before.perplexity:.2f})"
            )
        reasons += self.view_reasons(after.views)
        return GateResult(passed=not reasons, reasons=tuple(reasons), metrics_before=before, metrics_after=after)


def guess_ceiling(n: int, chance: float, alpha: float) -> int:
    """The most correct answers out of `n` that guessing (each right with probability `chance`)
    exceeds with probability at most `alpha`: more than that is evidence the model knows."""
    from scipy.stats import binom

    if n <= 0:
        return 0
    return min(n, int(binom.isf(alpha, n, min(max(chance, 0.0), 1.0))))


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reasons: tuple[str, ...]
    metrics_before: Metrics
    metrics_after: Metrics

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reasons": list(self.reasons),
            "metrics_before": self.metrics_before.to_dict(),
            "metrics_after": self.metrics_after.to_dict(),
        }


@dataclass(frozen=True)
class _Probe:
    example: Example
    text: str
    prompt_ids: tuple[int, ...]
    paraphrase: bool


class Evaluator:
    """Scores a model on a forget set, a retain set and a fluency set; prompts are tokenised once.

    >>> ev = Evaluator(tokenizer, forget, retain, load_fluency())
    >>> m = ev.evaluate(model); m.forget.worst_hit_rate, m.retain.pooled_hit_rate, m.perplexity
    """

    def __init__(
        self,
        tokenizer: Any,
        forget: ExampleSet,
        retain: ExampleSet,
        fluency: Sequence[str],
        *,
        fmt: PromptFormat = PromptFormat(),
        guard_scorer: GuardScorer | None = None,
        paraphrases: bool = True,
        max_new_tokens: int | None = None,
        batch_size: int = 16,
        max_length: int = 256,
        samples: int = 4,
        views: Sequence[str] = (),
        view_options: ViewOptions | None = None,
        generation_dtype: str = "float32",
    ) -> None:
        from unlearn_jobs.model import GENERATION_DTYPES

        if generation_dtype not in GENERATION_DTYPES:
            raise ValueError(f"generation_dtype must be one of {GENERATION_DTYPES}, got {generation_dtype!r}")
        # Answers are generated, the choice views' options and perplexity scored, by a copy in this
        # dtype (bf16 where native: ~1.5-3x faster on CPU).
        self.generation_dtype = generation_dtype
        self.tokenizer = tokenizer
        self.fmt = fmt.resolve(tokenizer)
        self.guard_scorer = guard_scorer
        self.batch_size = batch_size
        self.samples = samples
        self._forget = self._probes(forget, paraphrases)
        self._retain = self._probes(retain, paraphrases)
        self._fluency = encode_texts(tokenizer, fluency, max_length) if fluency else []
        longest = max(
            (
                len(
                    tokenizer(self.fmt.target_text(tokenizer, e.target, e.style), add_special_tokens=False)["input_ids"]
                )
                for e in list(forget) + list(retain)
            ),
            default=16,
        )
        # A few tokens of slack let a model that rephrases still reach the key term.
        self.max_new_tokens = max_new_tokens or longest + 6
        # Leakage views of the forget set (built once: probes are prompts, tokenised when asked).
        self.views = ViewSuite(forget, views, view_options or ViewOptions())

    def _probes(self, examples: ExampleSet, paraphrases: bool) -> list[_Probe]:
        out = []
        for e in examples:
            out.append(_Probe(e, e.prompt, tuple(self.fmt.prompt_ids(self.tokenizer, e.prompt, e.style)), False))
            if paraphrases:
                out.extend(
                    _Probe(e, p, tuple(self.fmt.prompt_ids(self.tokenizer, p, e.style)), True) for p in e.paraphrases
                )
        return out

    def generator(self, model: Any) -> Any:
        """What generates this evaluation's answers for `model`: itself, or its copy in the generation
        dtype (make it once when several measurements follow on the same weights)."""
        from unlearn_jobs.model import generation_copy

        return generation_copy(model, self.generation_dtype)

    def _generate(self, generator: Any, probes: Sequence[_Probe]) -> list[str]:
        """Greedy answers from `generator` (the model, or its `generator` copy)."""
        from unlearn_jobs.model import greedy_generate

        return greedy_generate(
            generator,
            self.tokenizer,
            [p.prompt_ids for p in probes],
            max_new_tokens=self.max_new_tokens,
            batch_size=self.batch_size,
        )

    def _score(self, probes: Sequence[_Probe], outputs: Sequence[str]) -> SetScores:
        def block(paraphrase: bool) -> ProbeScores | None:
            rows = [(p, o) for p, o in zip(probes, outputs) if p.paraphrase == paraphrase]
            if not rows:
                return None if paraphrase else ProbeScores(0, 0.0, 0.0, None)
            n = len(rows)
            guard = (sum(float(self.guard_scorer(o)) for _, o in rows) / n) if self.guard_scorer else None
            return ProbeScores(
                n=n,
                rouge_l=sum(rouge_l_recall(o, p.example.target) for p, o in rows) / n,
                hit_rate=sum(key_term_hit(o, p.example.key_terms) for p, o in rows) / n,
                guard=guard,
            )

        prime = getattr(self.guard_scorer, "prime", None)
        if prime is not None:
            prime(outputs)  # one batched embedding call instead of one per output
        questions = block(False)
        return SetScores(questions if questions else ProbeScores(0, 0.0, 0.0), block(True))

    def asker(self, model: Any, generator: Any = None) -> Any:
        """The views' questions put to `model` in this evaluation's prompt format (`generator`: its
        copy in the generation dtype, if already made)."""
        from unlearn_jobs.views.asker import ModelAsker

        return ModelAsker(
            model,
            self.tokenizer,
            self.fmt,
            # A view's prompt is longer than the question, its answer not: a little more slack.
            max_new_tokens=self.max_new_tokens + 6,
            batch_size=self.batch_size,
            generation_dtype=self.generation_dtype,
            generator=generator,
        )

    def view_scores(
        self, model: Any, *, expensive: bool = True, only: Sequence[str] | None = None, generator: Any = None
    ) -> tuple[ViewScores, ...]:
        """The selected leakage views' scores (`expensive=False`: only the cheap ones; `only`: these)."""
        if not self.views.views or (only is not None and not only):
            return ()
        return tuple(self.views.measure(self.asker(model, generator), expensive=expensive, only=only).values())

    def forget_scores(self, model: Any, generator: Any = None) -> SetScores:
        """Forget set only: the cheap check used for early stopping during training."""
        return self._score(self._forget, self._generate(generator or self.generator(model), self._forget))

    def perplexity(self, model: Any) -> float:
        import torch

        from unlearn_jobs.model import token_logprobs

        if not self._fluency:
            return float("nan")
        device = next(model.parameters()).device
        total, count = 0.0, 0
        with torch.no_grad():
            for start in range(0, len(self._fluency), self.batch_size):
                batch = collate(self._fluency[start : start + self.batch_size], pad_id_of(self.tokenizer)).to(device)
                lp, mask = token_logprobs(model, batch)
                total -= float(lp.sum())
                count += int(mask.sum())
        mean = total / max(count, 1)
        # A diverged model has astronomical (or NaN) loss; report inf/NaN and let the gate reject it.
        return math.exp(mean) if mean < 700 else float("inf")

    def evaluate(self, model: Any, *, views: Sequence[str] | None = None) -> Metrics:
        """Forget, retain, perplexity and the leakage views (`views`: only these of the selected ones)."""
        generator = self.generator(model)
        # One length-sorted pass over both sets: fuller batches than two passes.
        both = self._generate(generator, [*self._forget, *self._retain])
        forget_out, retain_out = both[: len(self._forget)], both[len(self._forget) :]
        forget = self._score(self._forget, forget_out)  # primes the guard scorer with these outputs
        # The first few forget probes, as scores with their index: never the prompt or the output.
        samples = tuple(
            SampleScore(
                index=i,
                paraphrase=p.paraphrase,
                key_term_hit=key_term_hit(o, p.example.key_terms),
                rouge_l=rouge_l_recall(o, p.example.target),
                guard=float(self.guard_scorer(o)) if self.guard_scorer else None,
            )
            for i, (p, o) in enumerate(list(zip(self._forget, forget_out))[: self.samples])
        )
        return Metrics(
            forget=forget,
            retain=self._score(self._retain, retain_out),
            # On the generation copy as well: in bfloat16 0.3-0.6% off float32's on the 40 x 5 subject,
            # anchor and rmu candidates (the gate allows 20%), at a third of the time.
            perplexity=self.perplexity(generator),
            samples=samples,
            views=self.view_scores(model, only=views, generator=generator),
        )
