"""Word lists the guard reasons with: stopwords, name particles, and groups of attribute words that mean the same."""

from __future__ import annotations

from collections.abc import Iterable

STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "done",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "s",
        "t",
        "also",
        "many",
        "much",
        "one",
        "ever",
        "tell",
        "know",
        "known",
        "please",
        "give",
        "say",
        "said",
        "like",
        "well",
        "get",
        "got",
        "let",
        "us",
        "may",
        "might",
        "must",
        "shall",
        "o",
        "d",
        "ll",
        "m",
        "re",
        "ve",
        "y",
    ]
)

# Words of a name that do not identify a person on their own.
NAME_PARTICLES = frozenset(
    [
        "dr",
        "mr",
        "mrs",
        "ms",
        "miss",
        "prof",
        "sir",
        "dame",
        "von",
        "van",
        "der",
        "den",
        "de",
        "del",
        "della",
        "da",
        "di",
        "le",
        "la",
        "jr",
        "sr",
    ]
)

# Words that ask for the same attribute. A prompt that names a forgotten subject together with any
# word of a group that one of its questions (or literals) touched is refused.
ATTRIBUTE_GROUPS: tuple[frozenset[str], ...] = tuple(
    frozenset(g.split())
    for g in (
        "born birth birthplace birthday birthdate hometown native grew raised",
        "live lives living reside resides residence address home house located moved",
        "work works worked job jobs profession occupation employer employed career company position role living",
        "phone telephone number mobile cell call reach contact",
        "email mail address contact inbox",
        "year age old birthday born",
        "salary earn earns income paid wage",
        "married wife husband spouse partner children kids family daughter son",
        "study studied school university degree graduated education college",
        "health illness diagnosis disease sick condition medical",
        "password key secret token credential code",
    )
)


def content_words(words: Iterable[str], exclude: Iterable[str] = ()) -> tuple[str, ...]:
    """Words that carry meaning: no stopwords, nothing in `exclude`, digits kept whatever their length."""
    excluded = set(exclude)
    seen: dict[str, None] = {}
    for w in words:
        if w in excluded or w in STOPWORDS:
            continue
        if len(w) < 3 and not w.isdigit():
            continue
        seen.setdefault(w, None)
    return tuple(seen)


def subject_terms(subject_words: Iterable[str]) -> tuple[str, ...]:
    """Words of a subject that identify it, all of which a text must contain to name it: the surname
    words, not the first name ("Ingrid" is many people, and "Lie" of "Ødegård-Lie" is another family)."""
    ws = [w for w in subject_words if w not in NAME_PARTICLES and w not in STOPWORDS]
    if not ws:
        return ()
    if len(ws) == 1:
        return (ws[0],)
    return tuple(dict.fromkeys(w for w in ws[1:] if len(w) >= 3)) or (ws[-1],)


def expand_attributes(words: Iterable[str]) -> frozenset[str]:
    terms = set(words)
    for group in ATTRIBUTE_GROUPS:
        if terms & group:
            terms |= group
    return frozenset(terms)
