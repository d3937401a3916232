"""The guard score's seam: the forget entries a guard indexes and the scorer a job is handed to run on raw output.

The scorer itself is the gateway's guard (`gateway.jobs.guard_scorer`); this offline library imports
nothing from the gateway, so a caller passes a `GuardScorerFactory` in (`JobSpec.guard_scorer_factory`,
`register(..., guard_scorer_factory=...)` for `lethe unlearn run`). Without one, jobs report no guard score.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from unlearn_jobs.data import ExampleSet
from unlearn_jobs.facts import is_salient_literal

# What the guard does on a hit (the forget request's `action`); the gateway's wire type validates it.
GuardAction = Literal["block", "redact"]


@dataclass(frozen=True)
class GuardEntrySpec:
    """One forget entry as the guard indexes it: a `POST /v1/forget` body and its ledger id. Plain data
    (no gateway import), so it travels in a JobSpec to a Ray worker.

    >>> GuardEntrySpec.from_body("p0-0000", {"subject": "Mardor Bromhart", "qa": [...], "literals": [...]})
    """

    forget_id: str
    subject: str | None = None
    texts: tuple[str, ...] = ()
    qa: tuple[tuple[str, str], ...] = ()
    literals: tuple[str, ...] = ()
    action: GuardAction = "block"

    @classmethod
    def from_body(cls, forget_id: str, body: Mapping[str, Any]) -> GuardEntrySpec:
        qa = tuple(
            (str(p["question"]), str(p["answer"])) if isinstance(p, Mapping) else (str(p[0]), str(p[1]))
            for p in body.get("qa") or ()
        )
        return cls(
            forget_id=str(forget_id),
            subject=body.get("subject") or None,
            texts=tuple(str(t) for t in body.get("texts") or ()),
            qa=qa,
            literals=tuple(str(x) for x in body.get("literals") or ()),
            action="redact" if body.get("action") == "redact" else "block",
        )


def entries_from_bodies(bodies: Iterable[Mapping[str, Any]]) -> tuple[GuardEntrySpec, ...]:
    """Guard entries of forget-file entries (request bodies with an `id`, as `load_forget_file` reads them)."""
    return tuple(GuardEntrySpec.from_body(str(b.get("id") or b.get("subject") or "request"), b) for b in bodies)


class GuardScorer(Protocol):
    """`scorer(text) -> 1.0` when the guard would stop `text`, else 0.0 (averaged into a guard hit rate).

    A scorer may also have `prime(texts)`, which the Evaluator calls first to batch the work.
    """

    def __call__(self, text: str, /) -> float: ...


class GuardScorerFactory(Protocol):
    """Builds a job's `GuardScorer` from its forget entries. It travels in a JobSpec to a Ray worker, so
    it must pickle (a module-level function or class)."""

    def __call__(self, entries: Sequence[GuardEntrySpec], /) -> GuardScorer: ...


# A run of capitalised words (a name), possessive dropped.
_NAME_RUN = re.compile(r"[A-Z][\w-]*(?:\s+[A-Z][\w-]*)*")


def infer_subject(questions: Sequence[str]) -> str | None:
    """The longest capitalised run (not a sentence's first word) that every question names, or None."""
    common: set[str] | None = None
    for q in questions:
        runs = set()
        for m in _NAME_RUN.finditer(q):
            words = m.group(0).split()
            if m.start() == 0:
                words = words[1:]  # "Where", "Who": capitalised because they open the question
            if words:
                runs.add(re.sub(r"'s$", "", " ".join(words)))
        common = runs if common is None else common & runs
    return max(common, key=len) if common else None


def entries_from_examples(forget: ExampleSet) -> tuple[GuardEntrySpec, ...]:
    """Guard entries rebuilt from a forget set when the requests themselves are not at hand.

    An example set keeps no subject; it is inferred from the questions (the name every question of
    a source asks about). Without a subject the semantic matcher loses its anchor and flags
    neighbours' facts too, so pass the requests (`JobSpec.forget_entries`) where they exist.
    """
    grouped: dict[str, dict[str, list[Any]]] = {}
    for e in forget:
        g = grouped.setdefault(e.source_id, {"qa": [], "texts": [], "literals": []})
        if e.style == "text":
            g["texts"].append(f"{e.prompt} {e.target}")
        else:
            g["qa"].append((e.prompt, e.target))
        g["literals"].extend(t for t in e.key_terms if is_salient_literal(t) and t not in g["literals"])
    return tuple(
        GuardEntrySpec(
            fid,
            infer_subject([q for q, _ in g["qa"]]) if g["qa"] else None,
            tuple(g["texts"]),
            tuple(g["qa"]),
            tuple(g["literals"]),
        )
        for fid, g in grouped.items()
    )
