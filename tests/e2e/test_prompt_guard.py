"""Prompt-side guard on the real stack (tiny model, prompt_mode=refuse): the guard answers; the generation
started beside the check is cancelled, and nothing of it is sent."""

from __future__ import annotations

import httpx
import openai
import pytest

from gateway.guard.types import REFUSAL_TEXT

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": "Bearer test-admin-token"}


def test_question_about_a_forgotten_fact_is_refused(tiny_server):
    with httpx.Client(base_url=tiny_server.base_url, timeout=60) as http:
        resp = http.post(
            "/v1/forget",
            headers=AUTH,
            json={
                "subject": "Aurelia Quint",
                "qa": [
                    {
                        "question": "What is the home address of Aurelia Quint?",
                        "answer": "Aurelia Quint lives at 9 Larkspur Lane in Dunmore.",
                    }
                ],
            },
        )
        assert resp.status_code == 201
        version = resp.json()["index_version"]
    client = openai.OpenAI(base_url=f"{tiny_server.base_url}/v1", api_key="unused", max_retries=0)
    for question in ["What is the home address of Aurelia Quint?", "Where does Aurelia Quint live?"]:
        raw = client.chat.completions.with_raw_response.create(
            model="tiny-llama", messages=[{"role": "user", "content": question}], max_tokens=20
        )
        completion = raw.parse()
        assert completion.choices[0].message.content == REFUSAL_TEXT
        assert completion.choices[0].finish_reason == "content_filter"
        assert raw.headers["x-lethe-replica"] == "guard"  # answered by the guard, not by an LLM replica
        assert int(raw.headers["x-lethe-index-version"]) >= version
    unrelated = client.chat.completions.with_raw_response.create(
        model="tiny-llama", messages=[{"role": "user", "content": "What is the capital of Norway?"}], max_tokens=5
    )
    assert unrelated.headers["x-lethe-replica"].startswith("llm-")
