"""A tiny untrained Llama with a word-level tokenizer on disk: the unlearning benchmarks' smoke-test base model."""

from __future__ import annotations

import pytest
import torch

from tests.unlearn_jobs.conftest import build_tiny_llama, build_tokenizer
from unlearn_jobs.data import load_fluency
from unlearn_jobs.facts import generate_fact_set


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    """Vocabulary of the facts the smoke runs generate (seed 0, up to 6 people × 2 facts)."""
    out = tmp_path_factory.mktemp("bench") / "base"
    tokenizer = build_tokenizer(generate_fact_set(6, 2, seed=0), load_fluency())
    model = build_tiny_llama(len(tokenizer), layers=2, hidden=32)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
