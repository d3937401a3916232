"""The matcher registry: the one place that decides which matchers a forget index runs."""

from __future__ import annotations

from gateway.guard.matchers.base import CheckedText, Matcher, MatcherFactory
from gateway.guard.matchers.cooccur import CooccurMatcher
from gateway.guard.matchers.literal import LiteralMatcher
from gateway.guard.matchers.ngram import NgramMatcher
from gateway.guard.matchers.prompt import PromptMatcher
from gateway.guard.matchers.semantic import SemanticMatcher

# Name -> factory(settings, dim). Output matchers run in registry order, cheapest first.
MATCHERS: dict[str, MatcherFactory] = {
    "literal": LiteralMatcher,
    "ngram": NgramMatcher,
    "cooccur": CooccurMatcher,
    "semantic": SemanticMatcher,
    "prompt": PromptMatcher,
}

__all__ = ["MATCHERS", "CheckedText", "Matcher", "MatcherFactory"]
