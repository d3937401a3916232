"""Copy-on-add storage for matcher data: sealed segments shared between snapshots, one small tail rebuilt."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
B = TypeVar("B")


@dataclass(frozen=True)
class Segment(Generic[T, B]):
    items: tuple[T, ...]  # the source items, kept so the tail can be rebuilt and everything compacted
    built: B  # the search structure made from them
    sealed: bool


def append_items(
    segments: tuple[Segment[T, B], ...], new: Sequence[T], build: Callable[[tuple[T, ...]], B], tail_max: int
) -> tuple[Segment[T, B], ...]:
    """New segments with `new` added: the unsealed tail absorbs them and is sealed once it holds tail_max."""
    items = tuple(new)
    if not items:
        return segments
    kept = list(segments)
    if kept and not kept[-1].sealed:
        items = kept.pop().items + items
    kept.append(Segment(items, build(items), sealed=len(items) >= tail_max))
    return tuple(kept)


def compact_items(
    segments: tuple[Segment[T, B], ...], build: Callable[[tuple[T, ...]], B]
) -> tuple[Segment[T, B], ...]:
    if len(segments) <= 1:
        return segments
    items = tuple(i for s in segments for i in s.items)
    return (Segment(items, build(items), sealed=True),)
