"""gateway.serve.metrics: Ray processes record through Ray's agent, batched, and only when metrics are on."""

from __future__ import annotations

from gateway.observability import metrics
from gateway.serve.metrics import RayBackend, RayFlusher, RayInstrument, configure_ray_metrics


class FakeRayMetric:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float, dict | None]] = []

    def inc(self, value, tags=None):
        self.calls.append(("inc", value, tags))

    def set(self, value, tags=None):
        self.calls.append(("set", value, tags))


def test_ray_counters_are_summed_before_they_reach_ray_and_gauges_are_set_at_once():
    flusher = RayFlusher(flush_s=3600, refresh_s=3600)
    counter, gauge = FakeRayMetric(), FakeRayMetric()
    requests = RayInstrument(counter, ("route", "status"), flusher)
    for _ in range(50):
        requests.inc(("/v1/chat/completions", "200"), 1.0)
    requests.inc(("/v1/chat/completions", "422"), 1.0)
    assert counter.calls == []
    flusher.flush()
    assert sorted(counter.calls, key=lambda c: c[1]) == [
        ("inc", 1.0, {"route": "/v1/chat/completions", "status": "422"}),
        ("inc", 50.0, {"route": "/v1/chat/completions", "status": "200"}),
    ]
    flusher.flush()  # nothing new: Ray refuses zero increments, none are sent
    assert len(counter.calls) == 2
    RayInstrument(gauge, ("version",), flusher).set(("v2",), 1.0)
    assert gauge.calls == [("set", 1.0, {"version": "v2"})]


def test_ray_processes_configure_the_ray_backend_unless_metrics_are_off(monkeypatch):
    monkeypatch.setattr(metrics, "_registry", metrics._registry)
    monkeypatch.delenv("LETHE_METRICS_ENABLED", raising=False)
    assert isinstance(configure_ray_metrics().backend, RayBackend)  # no instrument yet: Ray is not touched
    monkeypatch.setenv("LETHE_METRICS_ENABLED", "0")
    registry = configure_ray_metrics()
    assert isinstance(registry.backend, metrics.NullBackend) and not registry.enabled
