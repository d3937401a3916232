"""Value types the guard speaks: a forget entry, a match, a verdict, and the refusal sentence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal["block", "redact"]
MatchKind = Literal["literal", "ngram", "cooccur", "semantic", "prompt"]

ACTIONS: tuple[str, ...] = ("block", "redact")

# Sent instead of the answer when a block match stops a response (finish_reason content_filter).
REFUSAL_TEXT = "I can't help with that."  # says nothing of what matched, or that anything did

# What a redacted span becomes, in full and streamed responses alike.
REDACTION_TEXT = "[redacted]"


class GuardBudgetExceeded(Exception):
    """A check ran past its time budget and gave up: the text was not checked, so it must not be served
    (the chat service answers a prompt with 413 `prompt_too_large_to_check`, and ends a stream)."""

    def __init__(self, chars: int) -> None:
        super().__init__(f"a text of {chars} characters could not be checked within the guard's time budget")
        self.chars = chars


@dataclass(frozen=True)
class ForgetEntry:
    """One forget request as the guard sees it.

    >>> ForgetEntry("id-1", "Ingrid Solvang", texts=(), qa=(("Where was Ingrid Solvang born?", "Tromsø"),),
    ...             literals=("+47 912 33 457",), action="block", reason="gdpr")
    """

    forget_id: str
    subject: str | None
    texts: tuple[str, ...] = ()
    qa: tuple[tuple[str, str], ...] = ()
    literals: tuple[str, ...] = ()
    action: Action = "block"
    reason: str = ""

    def __post_init__(self) -> None:
        if not self.forget_id:
            raise ValueError("forget_id must be a non-empty string")
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, got {self.action!r}")
        # Lists from JSON would make the entry unhashable and mutable: insist on tuples.
        for name in ("texts", "qa", "literals"):
            if not isinstance(getattr(self, name), tuple):
                raise ValueError(f"{name} must be a tuple")
        for pair in self.qa:
            if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
                raise ValueError("each qa item must be a (question, answer) tuple of strings")
            if not pair[0].strip() or not pair[1].strip():
                raise ValueError("qa questions and answers must be non-empty")
        if any(not isinstance(t, str) or not t.strip() for t in self.texts):
            raise ValueError("texts must be non-empty strings")
        if any(not isinstance(t, str) or not t.strip() for t in self.literals):
            raise ValueError("literals must be non-empty strings")
        if not (self.texts or self.qa or self.literals):
            raise ValueError("a forget entry needs at least one text, qa pair or literal")


@dataclass(frozen=True)
class GuardMatch:
    """One reason to stop or redact: which entry, which matcher, how sure, and where in the checked text."""

    forget_id: str
    kind: MatchKind
    score: float
    start: int
    end: int
    action: str

    def shifted(self, offset: int) -> GuardMatch:
        return GuardMatch(self.forget_id, self.kind, self.score, self.start + offset, self.end + offset, self.action)

    def clipped(self, start: int, end: int) -> GuardMatch:
        return GuardMatch(self.forget_id, self.kind, self.score, start, end, self.action)


@dataclass(frozen=True)
class GuardVerdict:
    """All matches of one check, and the index version they were computed against."""

    matches: tuple[GuardMatch, ...]
    index_version: int

    @property
    def match(self) -> bool:
        return bool(self.matches)

    @property
    def action(self) -> str | None:
        if not self.matches:
            return None
        return "block" if any(m.action == "block" for m in self.matches) else "redact"
