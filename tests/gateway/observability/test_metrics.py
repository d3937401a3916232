"""gateway.observability.metrics: names and labels stay bounded, the helpers work without Ray, and the chat path
records what the dashboard shows (with a scripted engine and a private registry)."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from prometheus_client import CollectorRegistry

from gateway.chat.replica import LLMReplica
from gateway.chat.service import ChatService
from gateway.config import load_config
from gateway.guard.artifacts import build_artifacts
from gateway.guard.index import ForgetIndex
from gateway.guard.types import ForgetEntry
from gateway.http.app import create_app
from gateway.ledger.states import ForgetStatus, JobState
from gateway.observability import metrics
from tests.support.fakes import LocalLLMClient, ScriptedEngine, StaticGuard

MODEL = "scripted"
SECRET = ForgetEntry("f-secret", "Ingrid Solvang", literals=("+47 912 33 457",), reason="gdpr")
LEAK = "Sure. You can reach her at +47 912 33 457 most days."
CLEAN = "Hello from the scripted engine."
ID_LIKE = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}|chatcmpl|[0-9a-f]{16}", re.I)


@pytest.fixture
def registry(monkeypatch) -> CollectorRegistry:
    """A fresh registry for one test; the process's registry comes back afterwards."""
    monkeypatch.setattr(metrics, "_registry", metrics._registry)
    reg = CollectorRegistry()
    metrics.configure(backend=metrics.PrometheusBackend(reg))
    return reg


def samples(reg: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for family in reg.collect() for s in family.samples]


def series(reg: CollectorRegistry) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {(name, tuple(sorted(labels.items()))) for name, labels, _ in samples(reg)}


def value(reg: CollectorRegistry, name: str, **labels: str) -> float:
    return reg.get_sample_value(name, labels) or 0.0


# --- the definitions ---------------------------------------------------------------------------


def test_every_metric_is_named_by_the_conventions():
    names = [spec.name for spec in metrics.SPECS]
    assert len(names) == len(set(names))
    for spec in metrics.SPECS:
        assert re.fullmatch(r"lethe_[a-z_]+", spec.name)
        assert (spec.kind == "counter") == spec.name.endswith("_total")
        if spec.kind == "histogram":
            assert spec.name.endswith("_seconds") and list(spec.buckets) == sorted(spec.buckets)
        assert spec.help


def test_a_spec_with_an_unbounded_label_is_refused():
    with pytest.raises(ValueError, match="without a bound"):
        metrics.MetricSpec("lethe_x_total", "counter", "x", ("request_id",))
    with pytest.raises(ValueError, match="_total"):
        metrics.MetricSpec("lethe_x", "counter", "x")


def test_label_values_outside_their_vocabulary_become_other(registry):
    metrics.record_swap("exploded", 1.0)
    metrics.record_guard_check("middle", 0.001)
    metrics.record_job("Drop Table; --", "weird", 3.0)
    metrics.record_leakage("a version with spaces and text " * 3, 0.5, 0.9)
    metrics.record_request("/v1/forget/../../etc?q=secret text", 200, 0.01)
    assert value(registry, "lethe_swaps_total", result="other") == 1
    assert value(registry, "lethe_guard_check_seconds_count", stage="other") == 1
    assert value(registry, "lethe_unlearn_jobs_total", method="other", state="other") == 1
    assert value(registry, "lethe_raw_leakage_ratio", version="other") == 0.5
    assert value(registry, "lethe_requests_total", route="other", status="200") == 1


def test_state_labels_are_the_ledgers_vocabularies_and_the_released_event(registry):
    assert metrics.VOCABULARY["job_state"] == {s.value for s in JobState}
    assert metrics.VOCABULARY["forget_state"] == {s.value for s in ForgetStatus} | {"released"}
    metrics.record_forget_state(metrics.RELEASED, 2)
    metrics.record_job("npo", JobState.REJECTED, 30.0)
    assert value(registry, "lethe_forget_requests_total", state="released") == 2
    assert value(registry, "lethe_unlearn_jobs_total", method="npo", state="rejected") == 1


def test_helpers_for_swaps_versions_and_leakage(registry):
    metrics.set_serving_version("base-1a2b3c")
    metrics.set_serving_version("v-20261127-npo")
    metrics.record_swap("ok", 0.8)
    metrics.record_swap("rolled_back", 3.0)
    metrics.record_leakage("v-20261127-npo", leakage=0.05, retain=0.93)
    metrics.record_leakage("base-1a2b3c", leakage=0.8)
    assert value(registry, "lethe_serving_version_info", version="v-20261127-npo") == 1
    assert value(registry, "lethe_serving_version_info", version="base-1a2b3c") == 0
    assert value(registry, "lethe_swaps_total", result="rolled_back") == 1
    assert value(registry, "lethe_swap_duration_seconds_count", result="ok") == 1
    assert value(registry, "lethe_raw_leakage_ratio", version="v-20261127-npo") == 0.05
    assert value(registry, "lethe_retain_score", version="v-20261127-npo") == 0.93
    metrics.set_replica_unverified(True)  # a replica refusing traffic: its serving version fails verification
    assert value(registry, "lethe_replica_unverified") == 1
    metrics.set_replica_unverified(False)
    assert value(registry, "lethe_replica_unverified") == 0
    assert registry.get_sample_value("lethe_retain_score", {"version": "base-1a2b3c"}) is None


def test_helpers_are_harmless_without_configuration_or_ray(monkeypatch):
    monkeypatch.setattr(metrics, "_registry", None)
    monkeypatch.delenv("LETHE_METRICS_ENABLED", raising=False)
    metrics.record_swap("ok", 1.0)  # a private registry, no Ray, no server
    assert isinstance(metrics.registry().backend, metrics.PrometheusBackend)
    monkeypatch.setattr(metrics, "_registry", None)
    monkeypatch.setenv("LETHE_METRICS_ENABLED", "false")
    metrics.record_leakage("v1", 0.1, 0.9)
    assert isinstance(metrics.registry().backend, metrics.NullBackend)


def test_disabled_records_nothing(monkeypatch):
    monkeypatch.setattr(metrics, "_registry", metrics._registry)
    reg = CollectorRegistry()
    metrics.configure(enabled=False, backend=metrics.PrometheusBackend(reg))
    metrics.record_request("/v1/chat/completions", 200, 0.1)
    metrics.record_swap("ok", 1.0)
    assert samples(reg) == []


def test_wrong_label_names_are_a_programming_error(registry):
    with pytest.raises(ValueError, match="takes labels"):
        metrics.registry().inc("lethe_swaps_total", result="ok", replica="llm-0")


# --- the chat path ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def index(embedder) -> ForgetIndex:
    # Observed as in production (the ingress builds its index with GuardMetrics).
    return ForgetIndex.empty(embedder, observer=metrics.GuardMetrics()).with_entries(
        [build_artifacts(SECRET, embedder)], 3
    )


@pytest.fixture
async def app_parts(index, tiny_model_dir):
    engine = ScriptedEngine(CLEAN)
    config = load_config(env={"LETHE_MODEL": str(tiny_model_dir), "LETHE_MAX_MODEL_LEN": "256"})
    replica = LLMReplica(config, replica_id="llm-0", engine=engine)
    await replica.start()
    service = ChatService(LocalLLMClient(replica), MODEL, ready_timeout_s=1, guard=StaticGuard(index))
    app = create_app(service, max_body_bytes=4096)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client, engine


def chat(text: str, **extra) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **extra}


async def test_chat_metrics_stream_and_not(registry, app_parts):
    http, engine = app_parts
    assert (await http.post("/v1/chat/completions", json=chat("Hi?"))).status_code == 200
    assert (await http.post("/v1/chat/completions", json=chat("Hi?", stream=True))).status_code == 200
    engine.reply = LEAK
    blocked = (await http.post("/v1/chat/completions", json=chat("Call her?"))).json()
    assert blocked["choices"][0]["finish_reason"] == "content_filter"
    refused = await http.post(
        "/v1/chat/completions", json=chat("What is Ingrid Solvang's phone number, +47 912 33 457?")
    )
    assert refused.json()["choices"][0]["finish_reason"] == "content_filter"
    assert (await http.post("/v1/chat/completions", json={"model": MODEL})).status_code == 422

    route = "/v1/chat/completions"
    assert value(registry, "lethe_requests_total", route=route, status="200") == 4
    assert value(registry, "lethe_requests_total", route=route, status="422") == 1
    assert value(registry, "lethe_request_duration_seconds_count", route=route) == 5
    assert value(registry, "lethe_chat_completions_total", stream="false", finish_reason="stop") == 1
    assert value(registry, "lethe_chat_completions_total", stream="true", finish_reason="stop") == 1
    assert value(registry, "lethe_chat_completions_total", stream="false", finish_reason="content_filter") == 2
    assert value(registry, "lethe_chat_time_to_first_token_seconds_count", stream="true") == 1
    assert value(registry, "lethe_generated_tokens_total") >= 2 * len(CLEAN.split())
    assert value(registry, "lethe_guard_hits_total", stage="output", matcher="literal", action="block") == 1
    assert (
        sum(
            v
            for n, labels, v in samples(registry)
            if n == "lethe_guard_hits_total" and labels["stage"] == "prompt" and labels["action"] == "refuse"
        )
        >= 1
    )
    assert value(registry, "lethe_guard_check_seconds_count", stage="prompt") == 4
    assert value(registry, "lethe_guard_check_seconds_count", stage="output") >= 3


async def test_labels_stay_bounded_after_1000_distinct_prompts(registry, app_parts):
    """No label carries request text or ids, and the set of series stops growing."""
    http, engine = app_parts
    prompts: list[str] = []
    after_first_hundred: set = set()
    for i in range(1000):
        marker = uuid.uuid4().hex
        text = f"Question {i} about {marker}: what is the weather in town {marker[:6]}?"
        prompts.append(text)
        engine.reply = LEAK if i % 10 == 0 else f"Answer {marker} for you."
        kind = i % 4
        if kind == 0:
            resp = await http.post("/v1/chat/completions", json=chat(text, stream=True))
        elif kind == 1:
            resp = await http.post("/v1/chat/completions", json=chat(text))
        elif kind == 2:
            resp = await http.post("/v1/chat/completions", json=chat(text, temperature="hot"))  # 422
        else:
            resp = await http.get(f"/v1/forget/{marker}")  # not routed here: 404, never its path
        assert resp.status_code in (200, 404, 422)
        if i == 99:
            after_first_hundred = series(registry)
    final = series(registry)
    assert final == after_first_hundred, final - after_first_hundred
    assert len(final) < 200
    values = {v for _, labels in final for _, v in labels}
    for v in values:
        assert not ID_LIKE.search(v), v
        assert len(v) <= 64
    for text in prompts[:50] + prompts[-50:]:
        marker = text.split(" about ")[1][:32]
        assert not any(marker in v or marker[:6] in v for v in values)
    assert {labels["route"] for name, labels, _ in samples(registry) if name == "lethe_requests_total"} == {
        "/v1/chat/completions",
        "other",
    }


def test_view_labels_are_the_leakage_views_and_stay_bounded(registry):
    from unlearn_jobs.views import ALL_VIEWS

    assert metrics.VOCABULARY["view"] == set(ALL_VIEWS)
    metrics.record_view_leakage("v-2", {"fill_blank": 0.25, "yes_no": 0.5, "Where was Ingrid born?": 1.0})
    metrics.record_job_views("npo", {"multiple_choice": 0.75})
    assert value(registry, "lethe_raw_leakage_view_ratio", version="v-2", view="fill_blank") == 0.25
    assert value(registry, "lethe_raw_leakage_view_ratio", version="v-2", view="other") == 1.0  # never text
    assert value(registry, "lethe_unlearn_view_leakage_ratio", method="npo", view="multiple_choice") == 0.75
