"""Forget entries and their precomputed artifacts."""

import json
import re

import numpy as np
import pytest

from gateway.guard import ForgetEntry, ForgetIndex, GuardSettings
from gateway.guard.artifacts import build_artifacts, literal_keys
from gateway.guard.keyed import PROCESS_HASHER, TermHasher


def test_entry_validation_raises_value_errors():
    with pytest.raises(ValueError):
        ForgetEntry("x", None)
    with pytest.raises(ValueError):
        ForgetEntry("x", None, literals=("a",), action="delete")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ForgetEntry("x", None, qa=(("q?", ""),))
    with pytest.raises(ValueError):
        ForgetEntry("", None, literals=("a",))


def test_phone_literal_keys_cover_national_forms():
    keys = {k for view, k in literal_keys("+47 912 33 457", GuardSettings()) if view == "digits"}
    assert {"4791233457", "91233457", "091233457"} <= keys


def test_literal_limits():
    with pytest.raises(ValueError):
        literal_keys("x" * 65, GuardSettings())
    with pytest.raises(ValueError):
        literal_keys("redacted", GuardSettings())


def test_artifacts_hold_normalised_embeddings_and_terms(artifacts, person):
    a = next(x for x in artifacts if x.forget_id == person.forget_id)
    out = a.output_matrix()
    assert out.dtype == np.float32 and out.shape[1] == 384
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4)
    assert a.question_matrix().shape == (len(person.qa), 384)
    h = PROCESS_HASHER
    assert a.subject_terms == (h("solvang"),)
    assert h.words({"phone", "born", "email"}) <= set(a.attribute_terms)
    assert set(a.full_name) == h.words({"ingrid", "solvang"})


def test_artifacts_hold_no_text_of_the_entry(artifacts, person, embedder):
    """Every stored field is a keyed hash, a count or a vector: no word of the entry is in them."""
    a = next(x for x in artifacts if x.forget_id == person.forget_id)
    stored = json.dumps(a.terms_json()).casefold()
    # Words of letters: hashes are numbers, so a digit run such as "1964" may turn up in one by chance.
    texts = (*person.texts, *person.literals, person.subject or "")
    words = {w for text in texts for w in re.findall(r"[^\W\d_]{4,}", text)}
    assert words and not [w for w in words if w.casefold() in stored]
    assert all(k.kind in {"text", "email", "squeezed", "digits"} for k in a.literal_keys)
    other = build_artifacts(person, embedder, hasher=TermHasher(b"another key" * 3))
    assert other.key_id != a.key_id and set(other.literal_keys).isdisjoint(a.literal_keys)
    with pytest.raises(ValueError, match="hashed with key"):
        ForgetIndex.empty(embedder).with_entries([other], version=1)  # another deployment's key: refused
    keyed = ForgetIndex.empty(embedder, hasher=TermHasher(b"another key" * 3)).with_entries([other], version=1)
    assert keyed.check_output(f"Reach her at {person.literals[0]}.").action == "block"
    assert len(a.ngram_array()) > 0 and np.all(np.diff(a.ngram_array().astype(np.float64)) > 0)
