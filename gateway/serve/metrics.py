"""Lethe's metrics inside Ray: the `ray.util.metrics` backend every Ray process configures at start.

`gateway.observability.metrics` owns the names, labels and helpers and never imports Ray; each Serve
replica and each unlearning job's task calls `configure_ray_metrics()` first thing, so its numbers go
to the node's metrics agent (one Prometheus endpoint for every process of the node).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ray.util import metrics as ray_metrics

from gateway.observability import metrics
from gateway.observability.metrics import Instrument, MetricSpec


def configure_ray_metrics() -> metrics.MetricsRegistry:
    """This Ray process records to Ray's metrics agent, or nothing when `LETHE_METRICS_ENABLED` is off
    (`lethe serve` sets it for the whole cluster from `server.metrics_enabled`)."""
    return metrics.configure(enabled=metrics.enabled_by_env(), backend=RayBackend())


class RayInstrument:
    """One `ray.util.metrics` instrument; counters and gauges go through the flusher."""

    def __init__(self, metric: Any, labels: tuple[str, ...], flusher: RayFlusher | None = None) -> None:
        self._metric = metric
        self._labels = labels
        self._flusher = flusher
        self._tag_dicts: dict[tuple[str, ...], dict[str, str]] = {}  # bounded: values are cleaned

    def _tags(self, values: tuple[str, ...]) -> dict[str, str] | None:
        if not self._labels:
            return None
        tags = self._tag_dicts.get(values)
        if tags is None:
            tags = self._tag_dicts[values] = dict(zip(self._labels, values, strict=True))
        return tags

    def inc(self, values: tuple[str, ...], amount: float) -> None:
        if self._flusher is not None:
            self._flusher.add(self._metric, self._tags(values), amount)
        else:
            self._metric.inc(amount, tags=self._tags(values))

    def set(self, values: tuple[str, ...], value: float) -> None:
        if self._flusher is not None:
            self._flusher.keep(self._metric, self._tags(values), value)
        else:
            self._metric.set(value, tags=self._tags(values))

    def observe(self, values: tuple[str, ...], value: float) -> None:
        self._metric.observe(value, tags=self._tags(values))


class RayFlusher:
    """A daemon thread that talks to Ray's metrics for the request path:
    - counter increments are summed here and handed to Ray once per `flush_s` (a Ray call costs
      ~10 µs; a chat makes several), so a count shows up to `flush_s` later (Ray exports every ~10 s);
    - gauge values are re-set every `refresh_s`: Ray's agent drops a gauge value that was not
      reported for two export intervals (measured: ~20 s), so a gauge set once (the serving version,
      the index version) would vanish from the scrape while it is still true."""

    def __init__(self, flush_s: float, refresh_s: float) -> None:
        self._flush_s = flush_s
        self._refresh_s = refresh_s
        self._counts: dict[tuple[int, int], list[Any]] = {}  # (metric, tags) -> [metric, tags, amount]
        self._gauges: dict[tuple[int, int], tuple[Any, dict[str, str] | None, float]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, metric: Any, tags: dict[str, str] | None, amount: float) -> None:
        key = (id(metric), id(tags))  # tag dicts are cached per label set, so their ids are stable
        with self._lock:
            pending = self._counts.get(key)
            if pending is None:
                self._counts[key] = [metric, tags, amount]
                self._start()
            else:
                pending[2] += amount

    def keep(self, metric: Any, tags: dict[str, str] | None, value: float) -> None:
        with self._lock:
            self._gauges[(id(metric), id(tags))] = (metric, tags, value)
            metric.set(value, tags=tags)
            self._start()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lethe-metrics", daemon=True)
            self._thread.start()

    def flush(self) -> None:
        with self._lock:
            counts = [(m, t, a) for m, t, a in self._counts.values() if a > 0]
            for pending in self._counts.values():
                pending[2] = 0.0
        for metric, tags, amount in counts:
            metric.inc(amount, tags=tags)

    def _run(self) -> None:
        next_refresh = time.monotonic() + self._refresh_s
        while True:
            time.sleep(self._flush_s)
            self.flush()
            if time.monotonic() >= next_refresh:
                next_refresh = time.monotonic() + self._refresh_s
                with self._lock:
                    gauges = list(self._gauges.values())
                for metric, tags, value in gauges:
                    metric.set(value, tags=tags)


class RayBackend:
    """`ray.util.metrics` instruments: every process of a node is served by that node's metrics agent
    (`ray.init(_metrics_export_port=...)`), as `ray_<name>` plus Ray's own labels (WorkerId, …)."""

    def __init__(self, flush_s: float = 1.0, gauge_refresh_s: float = 5.0) -> None:
        self._flusher = RayFlusher(flush_s, gauge_refresh_s)

    def instrument(self, spec: MetricSpec) -> Instrument:
        if spec.kind == "counter":
            counter = ray_metrics.Counter(spec.name, description=spec.help, tag_keys=spec.labels)
            return RayInstrument(counter, spec.labels, self._flusher)
        if spec.kind == "gauge":
            gauge = ray_metrics.Gauge(spec.name, description=spec.help, tag_keys=spec.labels)
            return RayInstrument(gauge, spec.labels, self._flusher)
        histogram = ray_metrics.Histogram(
            spec.name, description=spec.help, boundaries=list(spec.buckets), tag_keys=spec.labels
        )
        return RayInstrument(histogram, spec.labels)
