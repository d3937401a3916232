"""The embedder's two backends compute the same vectors, so either can read what the other stored."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.guard.embedder import MiniLMEmbedder, onnx_available

TEXTS = [
    "Ingrid Solvang was born in Tromsø in 1987.",
    "Hi",
    "Ærøskøbing 🙂 «quoted» – a dash, and 4791233457.",
    "word " * 400,  # past the 256-token limit: both cut at the same place
    "People often ask me about Ingrid Solvang. She was born in Tampere, in Finland, and grew up there.",
    "",
]


@pytest.fixture(scope="module")
def torch_vectors() -> np.ndarray:
    return MiniLMEmbedder(threads=1, backend="torch").encode(TEXTS)


@pytest.mark.skipif(not onnx_available(), reason="onnxruntime/onnx not installed (they are dependencies)")
def test_onnx_backend_matches_torch(torch_vectors):
    embedder = MiniLMEmbedder(threads=1, backend="onnx")
    vectors = embedder.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, torch_vectors, atol=2e-5)
    # Batches are formed by token length; rows still come back in the caller's order.
    reordered = embedder.encode(TEXTS[::-1])
    np.testing.assert_allclose(reordered[::-1], vectors, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_default_backend_is_onnx_when_installed():
    assert MiniLMEmbedder().backend == ("onnx" if onnx_available() else "torch")
    with pytest.raises(ValueError):
        MiniLMEmbedder(backend="tensorflow")


@pytest.mark.skipif(not onnx_available(), reason="onnxruntime/onnx not installed (they are dependencies)")
@pytest.mark.parametrize("threads, spins", [(1, "0"), (2, "1")])
def test_onnx_threads_spin_only_when_several(threads, spins, torch_vectors):
    # One thread must not spin (the engine needs the other core); two only split a window when the
    # worker spins, and it stops spinning when the call returns.
    embedder = MiniLMEmbedder(threads=threads, backend="onnx")
    np.testing.assert_allclose(embedder.encode(TEXTS), torch_vectors, atol=2e-5)
    options = embedder._onnx()._session.get_session_options()
    assert options.intra_op_num_threads == threads
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == spins
    assert options.get_session_config_entry("session.force_spinning_stop") == spins
