"""The verbatim hold-back (issue 16): a stream holds only trailing words that can still begin a shingle of
the index (keyed hashes of the first 1 .. ngram_n - 1 words of every shingle), not the last four words of
everything; artifacts stored before those hashes existed keep the old hold. Whatever the hold, nothing of
a verbatim hit reaches the client under any chunking (block), and every hit is redacted whole (redact)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.guard import CachedEmbedder, ForgetEntry, ForgetIndex, StreamGuard, build_artifacts
from gateway.guard.artifacts import EntryArtifacts
from tests.gateway.guard.cost_support import RandomEmbedder

FORGOTTEN = "Velmora harbour keeps its lanterns burning through the long winter nights for the fishing boats."
ENTRY = ForgetEntry("harbour-1", None, texts=(FORGOTTEN,), reason="gdpr")


@pytest.fixture(scope="module")
def embedder() -> CachedEmbedder:
    return CachedEmbedder(RandomEmbedder())


@pytest.fixture(scope="module")
def artifacts(embedder) -> EntryArtifacts:
    return build_artifacts(ENTRY, embedder)


def held_after(index: ForgetIndex, text: str) -> str:
    """What the verbatim rule holds at the end of `text` (the other rules hold on their own: here, an entry
    without a subject anchors on its content words, "long" and "road")."""
    return text[index.verbatim_hold_from(index.prepare(text)) :]


def test_unrelated_words_are_not_held_and_a_possible_beginning_is(embedder, artifacts):
    index = ForgetIndex.empty(embedder).with_entries([artifacts], 1)
    # Only the word being written is held (it may still grow into anything) ...
    assert held_after(index, "We baked bread and walked home along a road") == "road"
    # ... and before it a word that begins a shingle ("the long winter nights for"), until the next one.
    assert held_after(index, "We baked bread and walked home along the road") == "the road"
    # "through the long" begins the shingle "through the long winter nights": held until it cannot be one.
    assert held_after(index, "We walked through the long way") == "through the long way"
    assert held_after(index, "We walked through the long road home") == "home"


def test_artifacts_without_prefixes_keep_the_four_word_hold(embedder, artifacts):
    old = dataclasses.replace(artifacts, ngram_prefixes=None)
    index = ForgetIndex.empty(embedder).with_entries([old], 1)
    assert held_after(index, "We baked bread and walked home along the road") == "walked home along the road"


def test_prefixes_travel_with_the_stored_artifacts(artifacts):
    terms = json.loads(json.dumps(artifacts.terms_json()))
    stored = dict(
        forget_id=artifacts.forget_id,
        action=artifacts.action,
        model_name=artifacts.model_name,
        dim=artifacts.dim,
        ngram_hashes=artifacts.ngram_hashes,
        output_vectors=artifacts.output_vectors,
        question_vectors=artifacts.question_vectors,
    )
    assert EntryArtifacts.from_stored(terms=terms, **stored) == artifacts
    del terms["ngram_prefixes"]  # stored before they existed
    assert EntryArtifacts.from_stored(terms=terms, **stored).ngram_prefixes is None
    assert "velmora" not in json.dumps(artifacts.terms_json()).casefold()


CONTEXTS = ["We walked through the long", "Sailors say that", "The harbour of Velmora.", "Keeps its lanterns"]


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    before=st.sampled_from(CONTEXTS),
    after=st.sampled_from(["", " And then we went home.", " through the long winter"]),
    cuts=st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=60),
    action=st.sampled_from(["block", "redact"]),
)
def test_a_verbatim_hit_never_reaches_the_client_under_any_chunking(embedder, before, after, cuts, action):
    entry = dataclasses.replace(ENTRY, action=action)
    index = ForgetIndex.empty(embedder).with_entries([build_artifacts(entry, embedder)], 1)
    text = f"{before} {FORGOTTEN}{after}"
    whole = index.check_output(text)
    assert whole.match  # the recital is a hit
    guard, out, at, i = StreamGuard(index), "", 0, 0
    while at < len(text):
        step = guard.feed(text[at : at + cuts[i % len(cuts)]])
        out += step.release
        at += cuts[i % len(cuts)]
        i += 1
        if step.stopped:
            break
    else:
        out += guard.finish().release
    # Eight words in a row of the forgotten text are a hit: no run of them may go out.
    words = FORGOTTEN.rstrip(".").split(" ")
    for k in range(len(words) - 7):
        assert " ".join(words[k : k + 8]) not in out
