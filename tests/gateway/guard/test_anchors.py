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
    assert len(terms._sets) <= 4
    assert AnchorTerms().with_terms([]) is not None


def test_positions_are_terms_numbers_leet_tokens_and_encoded_runs():
    text = "We met Solvang at noon, room 4711, s0lvang or $olvang. Nothing else here."
    ws = words(canonical(text))
    hashes = [PROCESS_HASHER(w.text) for w in ws]
    terms = AnchorTerms().with_terms([PROCESS_HASHER("solvang")])
    found = anchor_positions(text, ws, hashes, terms, [])
    assert found == [text.index("Solvang"), text.index("4711"), text.index("s0lvang"), text.index("$olvang")]


def test_trailing_token():
    assert trailing_token_start("Hello wor") == 6
    assert trailing_token_start("Hello ") == 6
    assert trailing_token_start("") == 0
