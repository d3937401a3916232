"""Folding, digit runs and check units: the views every matcher relies on."""

import itertools
import random

from gateway.guard.text import DigitView, FoldedText, fold, split_units, windows_of


def test_fold_maps_back_to_original_offsets():
    original = "Call  ÉMILIE Tromsø\u00a0at\tﬁve"
    folded = FoldedText.of(original)
    assert folded.text == "call emilie tromso at five"
    i = folded.text.index("tromso")
    s, e = folded.span(i, i + len("tromso"))
    assert original[s:e] == "Tromsø"
    i = folded.text.index("five")
    assert original[slice(*folded.span(i, i + 4))] == "ﬁve"


def test_long_whitespace_runs_do_not_fold_into_one_space():
    assert fold("a   b") == "a b"
    assert " " not in fold("a" + " " * 10 + "b")


def test_digit_view_drops_separators_within_a_number_only():
    view = DigitView.of(fold("+47 912-33.457 and (0)22 11"))
    assert view.text.split("\x00") == ["4791233457", "02211"]


def test_units_do_not_depend_on_how_the_stream_was_cut():
    text = (
        "Ingrid was here. She left at 5 p.m.! Then: a very long sentence without any stop that keeps going "
        "and going " * 6 + "\nEnd."
    )
    full = split_units(text, 0, 120, final=True)
    rng = random.Random(3)
    for _ in range(20):
        cut = rng.randint(1, len(text))
        partial = split_units(text[:cut], 0, 120, final=False)
        assert partial == full[: len(partial)]
    # Units tile the text: nothing falls between two windows.
    assert full[0].start == 0 and full[-1].end == len(text)
    assert all(a.end == b.start for a, b in itertools.pairwise(full))
    assert all(u.end - u.start <= 120 for u in full)


def test_windows_are_units_and_neighbouring_pairs():
    text = "First sentence here. Second one there. Third."
    windows = [w.text for w in windows_of(text, split_units(text, 0, 200, final=True))]
    assert windows == [
        "First sentence here.",
        "Second one there.",
        "First sentence here. Second one there.",
        "Third.",
        "Second one there. Third.",
    ]
