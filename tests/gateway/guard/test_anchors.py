"""Anchor terms and positions: what may begin a windowed hit (gateway.guard.anchors)."""

from __future__ import annotations

from gateway.guard.anchors import AnchorTerms, anchor_positions, trailing_token_start
from gateway.guard.keyed import PROCESS_HASHER
from gateway.guard.text import words
from gateway.guard.views import canonical


def test_terms_stay_in_few_sets_however_they_arrive():
    terms = AnchorTerms()
    for i in range(3_000):
        terms = terms.with_terms(range(i * 10, i * 10 + 10))
    assert len(terms) == 30_000 and 0 in terms and 29_999 in terms and 30_000 not in terms
    assert len(terms._names._sets) <= 4
    assert AnchorTerms().with_terms([]) is not None


def positions(text: str, terms: AnchorTerms) -> list[int]:
    ws = words(canonical(text))
    return anchor_positions(text, ws, [PROCESS_HASHER(w.text) for w in ws], terms, [])


def test_positions_are_terms_numbers_that_are_terms_and_leet_tokens():
    text = "We met Solvang at noon, room 4711, s0lvang or $olvang. Nothing else here."
    terms = AnchorTerms().with_terms([PROCESS_HASHER("solvang")], facts=[PROCESS_HASHER("4711")])
    found = positions(text, terms)
    assert found == [text.index("Solvang"), text.index("4711"), text.index("s0lvang"), text.index("$olvang")]


def test_numbers_that_are_no_term_do_not_anchor_unless_the_text_is_leet_throughout():
    """List numbers, percentages and centuries are not anchors (nothing counts a number that is no term of a
    row); a text with two leet words may read its numbers as words ("45" as "as"), so then they are."""
    terms = AnchorTerms().with_terms([PROCESS_HASHER("solvang")], facts=[PROCESS_HASHER("1984")])
    plain = "1. Water 40-60% of days in the 16th century, 3D and 1990s, born 1984."
    assert positions(plain, terms) == [plain.index("1984")]
    one_leet = "Covid-19 spread in 2020."
    assert positions(one_leet, terms) == [0]
    leet = "1ngr1d w0rk5 45 4 ch3f"
    assert positions(leet, terms) == [0, leet.index("w0rk5"), leet.index("45"), leet.index("4 "), leet.index("ch3f")]


def test_a_subject_entrys_fact_terms_anchor_only_where_written_as_names():
    """The everyday words "works" and "bookbinder": they anchor only capitalised (a name, a place, the
    start of a sentence), the only form the unnamed co-occurrence rule counts; a subject always anchors."""
    terms = AnchorTerms().with_terms(
        [PROCESS_HASHER("oakmere")], facts=[PROCESS_HASHER(w) for w in ("works", "bookbinder", "pebblegate")]
    )
    text = "It works well for a bookbinder. Works in Pebblegate, ask oakmere."
    ws = words(canonical(text))
    found = anchor_positions(text, ws, [PROCESS_HASHER(w.text) for w in ws], terms, [])
    assert found == [text.index("Works"), text.index("Pebblegate"), text.index("oakmere")]


def test_trailing_token():
    assert trailing_token_start("Hello wor") == 6
    assert trailing_token_start("Hello ") == 6
    assert trailing_token_start("") == 0
