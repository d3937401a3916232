"""Keyed hashes: how the guard enforces forgotten content without keeping its text.

Every term the guard stores of a forget request (literal keys in each view, n-gram shingles, subject,
attribute and fact words) is a 64-bit keyed BLAKE2b hash of its normalised form; a text under check is
normalised the same way and its candidate spans and words are hashed with the same key. Without the key a
stored hash cannot be tested against guesses (a phone number's 10^10 candidates, a name list), so the
ledger's guard artifacts reveal nothing once a request's plaintext is shredded. The key is one secret per
deployment, kept wrapped by the master key (`gateway.ledger.vault`), shared by every replica.

>>> hasher = TermHasher(b"k" * 32)
>>> hasher("ingrid") == hasher("ingrid") != hasher("solvang")
True
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from functools import cached_property

KEY_BYTES = 32
_PERSON = b"lethe.guard.v2"  # domain separation: these hashes mean nothing to any other use of the key


class TermHasher:
    """A keyed 64-bit hash of normalised text. `key_id` names the key (not derived from it reversibly)
    so an index can refuse artifacts hashed with another key instead of silently matching nothing."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the guard's hash key must be at least 16 bytes")
        self._base = hashlib.blake2b(key=key[:64], digest_size=8, person=_PERSON)
        self.key_id = hashlib.blake2b(key, digest_size=8, person=b"lethe.keyid").hexdigest()
        self._prefixed: dict[str, Callable[[str], int]] = {}

    def __call__(self, text: str) -> int:
        h = self._base.copy()
        h.update(text.encode("utf-8", "surrogatepass"))
        return int.from_bytes(h.digest(), "little")

    def prefixed(self, prefix: str) -> Callable[[str], int]:
        """`lambda text: self(prefix + text)`, with the prefix hashed once (the literal matcher's hot loop)."""
        cached = self._prefixed.get(prefix)
        if cached is None:
            base = self._base.copy()
            base.update(prefix.encode("utf-8"))

            def cached(text: str) -> int:
                h = base.copy()
                h.update(text.encode("utf-8", "surrogatepass"))
                return int.from_bytes(h.digest(), "little")

            self._prefixed[prefix] = cached
        return cached

    def words(self, words: Iterable[str]) -> frozenset[int]:
        return frozenset(self(w) for w in words)

    def groups(self, groups: Iterable[frozenset[str]]) -> tuple[frozenset[int], ...]:
        return tuple(self.words(g) for g in groups)

    @cached_property
    def titles(self) -> frozenset[int]:
        """The hashed titles `text.names_subject` lets stand before a name."""
        from gateway.guard.text import TITLES

        return self.words(TITLES)

    def __repr__(self) -> str:  # never the key
        return f"TermHasher(key_id={self.key_id})"


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


# For an index and its artifacts built in one process (tests, benchmarks, the offline scorer). A server
# passes the deployment's key (Ledger.guard_hasher()); artifacts hashed with this one are refused there.
PROCESS_HASHER = TermHasher(new_key())
