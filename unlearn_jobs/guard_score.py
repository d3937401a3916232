"""The gateway's own guard as an evaluation score: a forget index of the job's entries, run on raw model output."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from unlearn_jobs.data import ExampleSet
from unlearn_jobs.facts import is_salient_literal


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
    action: str = "block"

    @classmethod
    def from_body(cls, forget_id: str, body: Mapping[str, Any]) -> "GuardEntrySpec":
        qa = tuple((str(p["question"]), str(p["answer"])) if isinstance(p, Mapping) else (str(p[0]), str(p[1]))
                   for p in body.get("qa") or ())
        return cls(forget_id=str(forget_id), subject=body.get("subject") or None,
                   texts=tuple(str(t) for t in body.get("texts") or ()), qa=qa,
                   literals=tuple(str(x) for x in body.get("literals") or ()),
                   action=str(body.get("action") or "block"))


def entries_from_bodies(bodies: Iterable[Mapping[str, Any]]) -> tuple[GuardEntrySpec, ...]:
    """Guard entries of forget-file entries (request bodies with an `id`, as `load_forget_file` reads them)."""
    return tuple(GuardEntrySpec.from_body(str(b.get("id") or b.get("subject") or "request"), b) for b in bodies)


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
    return tuple(GuardEntrySpec(fid, infer_subject([q for q, _ in g["qa"]]) if g["qa"] else None,
                                tuple(g["texts"]), tuple(g["qa"]), tuple(g["literals"]))
                 for fid, g in grouped.items())


@dataclass
class GatewayGuardScorer:
    """`scorer(text) -> 1.0` when the gateway's guard (literal, verbatim and semantic matchers, default
    settings) would stop `text`, else 0.0; averaged by the Evaluator into a guard hit rate.

    Embeds the entries once and loads the embedder once (on first use), so build one per job.

    >>> scorer = GatewayGuardScorer.build([GuardEntrySpec.from_body("p0", body)])
    >>> scorer("Mardor Bromhart was born in Pebblemere.")
    1.0
    """

    index: Any
    checks: int = field(default=0)

    @classmethod
    def build(cls, entries: Sequence[GuardEntrySpec], *, embedder: Any = None, settings: Any = None) -> "GatewayGuardScorer":
        from gateway.guard import ForgetEntry, ForgetIndex, GuardSettings, MiniLMEmbedder, build_many_artifacts

        # threads=None: the embedder must not reset the trainer's torch thread count.
        embedder = embedder if embedder is not None else MiniLMEmbedder(threads=None)
        settings = settings or GuardSettings()
        guard_entries = [ForgetEntry(e.forget_id, e.subject, texts=e.texts, qa=e.qa, literals=e.literals,
                                     action=e.action)  # type: ignore[arg-type]
                         for e in entries if e.texts or e.qa or e.literals]
        index = ForgetIndex.empty(embedder, settings)
        if guard_entries:
            index = index.with_entries(build_many_artifacts(guard_entries, index.embedder, settings), version=1)
        return cls(index)

    def __call__(self, text: str) -> float:
        self.checks += 1
        return 1.0 if text.strip() and self.index.check_output(text).match else 0.0

    def prime(self, texts: Iterable[str]) -> None:
        """Embed every window of `texts` in one batch, so the per-text checks that follow hit the cache."""
        windows = [w.text for text in texts if text.strip() for w in self.index.windows(text)]
        if windows:
            self.index.embedder.encode(list(dict.fromkeys(windows)))
