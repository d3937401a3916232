"""Guarantee 1 for streams already open: after `POST /v1/forget` returns, an open stream sends nothing it covers.

The tiny model has random weights, but seeded sampling in fp32 makes its text repeatable, so a control
run tells which words it will say late in a ~5 s stream. The test opens that stream again, files a
forget request for a late span while the stream runs, and checks every chunk that arrived after the
POST returned. The first test starts on whatever index the session server has (empty on a fresh
server: the stream runs without hold-back until the entry arrives); the second starts guarded.
"""

from __future__ import annotations

import re
import threading
import time

import httpx
import openai
import pytest

from gateway.guard.types import REFUSAL_TEXT

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": "Bearer test-admin-token"}
ASK = {
    "model": "tiny-llama",
    "messages": [{"role": "user", "content": "Tell me a long story."}],
    "max_tokens": 440,
    "temperature": 1.0,
    "seed": 1234,
}


class TimedStream:
    """Reads a streamed completion on its own thread, stamping each chunk with its arrival time."""

    def __init__(self, client: openai.OpenAI) -> None:
        self.chunks: list[tuple[float, str]] = []
        self.finish: str | None = None
        self.error: Exception | None = None
        self.started = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(client,), daemon=True)
        self._thread.start()

    def _read(self, client: openai.OpenAI) -> None:
        try:
            for chunk in client.chat.completions.create(stream=True, **ASK):
                if not chunk.choices:
                    continue
                text = chunk.choices[0].delta.content or ""
                self.finish = chunk.choices[0].finish_reason or self.finish
                if text:
                    self.chunks.append((time.monotonic(), text))
                    self.started.set()
        except Exception as exc:
            self.error = exc
        finally:
            self.started.set()

    def join(self) -> None:
        self._thread.join(120)
        assert not self._thread.is_alive(), "the stream did not end"
        if self.error is not None:
            raise self.error

    @property
    def text(self) -> str:
        return "".join(t for _, t in self.chunks)

    def text_until(self, moment: float) -> str:
        return "".join(t for at, t in self.chunks if at <= moment)

    def text_after(self, moment: float) -> str:
        return "".join(t for at, t in self.chunks if at > moment)


def late_span(text: str, fraction: float) -> str:
    """30-60 characters of whole words, first said after `fraction` of the text (a literal must sit on
    word boundaries and stay under the literal size limit)."""
    for m in re.finditer(r"(?<=\s)\w", text[int(len(text) * fraction) :]):
        start = int(len(text) * fraction) + m.start()
        for end in range(start + 60, start + 30, -1):
            span = text[start:end]
            if end < len(text) and text[end].isspace() and span[-1].isalnum() and text.find(span) == start:
                return span
    raise AssertionError(f"no usable span after {fraction:.0%} of the control text")


@pytest.fixture(scope="module")
def client(tiny_server):
    return openai.OpenAI(base_url=f"{tiny_server.base_url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def control(client) -> str:
    run = TimedStream(client)
    run.join()
    assert run.finish == "length" and len(run.text) > 1000, (run.finish, run.text[:200])
    return run.text


def forget_while_streaming(tiny_server, client, control: str, span: str) -> tuple[TimedStream, float]:
    stream = TimedStream(client)
    assert stream.started.wait(60), "no first chunk"
    with httpx.Client(base_url=tiny_server.base_url, timeout=60) as http:
        resp = http.post("/v1/forget", headers=AUTH, json={"literals": [span], "reason": "secret"})
        acked = time.monotonic()
    assert resp.status_code == 201, resp.text
    stream.join()
    said_by_then = stream.text_until(acked)
    # Set-up check: the model had not reached the span when the POST returned, so the test means something.
    assert len(said_by_then) < control.index(span), "the model reached the span before the ack: slow machine?"
    return stream, acked


def test_forget_filed_while_a_stream_runs_stops_it_after_the_ack(tiny_server, client, control):
    span = late_span(control, 0.85)
    stream, acked = forget_while_streaming(tiny_server, client, control, span)
    after = stream.text_after(acked)
    assert after, "nothing arrived after the ack"
    assert span not in stream.text and span not in after
    assert stream.finish == "content_filter"
    assert stream.text.endswith(REFUSAL_TEXT)
    assert control.startswith(stream.text[: -len(REFUSAL_TEXT)].rstrip())


def test_guarded_stream_enforces_an_entry_acknowledged_after_it_started(tiny_server, client, control):
    """The index already blocks a span near the end (previous test); this stream starts guarded on
    that version and must enforce a newer entry for an earlier span."""
    span = late_span(control, 0.6)
    assert control.index(span) < control.index(late_span(control, 0.85))
    stream, _ = forget_while_streaming(tiny_server, client, control, span)
    assert span not in stream.text
    assert stream.finish == "content_filter"
    sent = stream.text[: -len(REFUSAL_TEXT)].rstrip()
    assert control.startswith(sent) and len(sent) <= control.index(span) + len(span)
