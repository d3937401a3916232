"""The hold-back with views: a disguised leak streamed in small chunks never reaches the client.

The stream guard releases text only once nothing of it can still become part of a hit. With the views
(gateway/guard/views.py) a key character may stand for several original ones and a match may end in a
reading (leet, decoded) of the text; the literal hold-back works in each view. Every dev-split leak of the
adversarial set is streamed in 1-, 3- and 7-character chunks: it must be stopped, and nothing the client
got may overlap what the guard acted on.
"""

from __future__ import annotations

import pytest

from gateway.guard import StreamGuard
from tests.gateway.guard.adversarial import build_index, leak_probes


@pytest.fixture(scope="module")
def index(embedder):
    return build_index(embedder)


def stream(index, text: str, size: int):
    guard = StreamGuard(index)
    released = ""
    for i in range(0, len(text), size):
        step = guard.feed(text[i : i + size])
        released += step.release
        if step.stopped:
            return released, step
    step = guard.finish()
    return released + step.release, step


@pytest.mark.parametrize("size", [1, 3, 7])
def test_disguised_leaks_streamed_in_chunks_are_stopped_before_any_of_them_is_released(index, size):
    probes = leak_probes("dev")
    if size == 1:
        probes = probes[::5]  # one-character chunks cost a check each: every fifth probe
    escaped = []
    for probe in probes:
        released, step = stream(index, probe.text, size)
        if not step.stopped:
            escaped.append(f"not stopped: {probe.category}/{probe.variant}: {probe.text!r}")
            continue
        first = min(m.start for m in step.verdict.matches)
        if len(released) > first:
            escaped.append(f"released past {first}: {probe.category}: {released!r}")
    assert not escaped, escaped
