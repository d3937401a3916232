"""Helpers of the guard cost tests: an embedder without a model (optionally slow), and plain prose."""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable

import numpy as np


class RandomEmbedder:
    """A random unit vector per text, seeded by the text: unrelated texts sit near cosine 0, as unrelated
    sentences do for a real encoder (a one-hot hash would collide with some stored row at cosine 1)."""

    name = "random-embedder"
    dim = 384

    def __init__(self, per_text: float = 0.0, hook: Callable[[str], None] | None = None) -> None:
        self.per_text = per_text  # seconds a text, like a real encoder on a busy core
        self.hook = hook  # called with each text before it is embedded (on the checking thread)

    def encode(self, texts: list[str]) -> np.ndarray:
        if self.per_text:
            time.sleep(self.per_text * len(texts))
        rows = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            if self.hook is not None:
                self.hook(text)
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
            v = np.random.default_rng(seed).standard_normal(self.dim)
            rows[i] = v / np.linalg.norm(v)
        return rows


# Words of ordinary prose; "Tampere" (a fact term of the forget set) and "1987" (a number) anchor most windows,
# so they are embedded like sentences about a forgotten topic.
WORDS = "the a river walked over bridge quietly Norway mountain after dinner we said that people Tampere 1987".split()  # noqa: SIM905


def prose(chars: int, seed: int = 1) -> str:
    """Ordinary sentences (14 words each) up to `chars` characters."""
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < chars:
        sentence = " ".join(rng.choice(WORDS) for _ in range(14)).capitalize() + ". "
        out.append(sentence)
        size += len(sentence)
    return "".join(out)
