"""Check units and windows: what the semantic matchers embed, cut the same whatever the chunking."""

import itertools
import random

from gateway.guard.text import split_units, windows_of


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
