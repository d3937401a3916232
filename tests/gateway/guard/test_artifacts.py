"""Forget entries and their precomputed artifacts."""

import numpy as np
import pytest

from gateway.guard import ForgetEntry, GuardSettings
from gateway.guard.artifacts import literal_keys


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
    assert a.subject_terms == ("solvang",)
    assert {"phone", "born", "email"} <= set(a.attribute_terms)
    assert len(a.ngram_array()) > 0 and np.all(np.diff(a.ngram_array().astype(np.float64)) > 0)
