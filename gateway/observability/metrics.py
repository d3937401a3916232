"""Every Lethe metric: its name, labels and buckets, the backends that export it, and one-line helpers.

Names are `lethe_*` in base units (`_seconds`, `_total` for counters). Labels are bounded: each label
has a fixed vocabulary (anything else is exported as `other`) or, for `route` and `version`, values
that the code chooses (a route template, a weight version id), never a request id, forget id or text.

Where the numbers go is the process's choice, made once with `configure(backend=...)`:
- Ray processes (every Serve replica, each unlearning job's task) configure `RayBackend` from
  `gateway.serve.metrics` when they start: their numbers go to Ray's metrics agent, which serves
  every process of a node on one port (`server.metrics_port`). Ray prefixes custom metrics with
  `ray_`; the scrape config in `deploy/prometheus/prometheus.yml` strips it back to `lethe_*`.
  This module never imports Ray;
- a plain process (unit tests, offline tools) that configures nothing gets a private
  prometheus_client registry, which no server exposes unless the caller does;
- `configure(enabled=False)` turns every helper into a no-op (the overhead benchmark's "off");
  `enabled_by_env()` reads `LETHE_METRICS_ENABLED` (default on), which `lethe serve` sets from
  `server.metrics_enabled` before starting Ray, so every worker inherits it; an unconfigured
  process follows it too.

>>> registry = CollectorRegistry()
>>> configure(backend=PrometheusBackend(registry))
>>> record_swap("ok", 0.4)
>>> registry.get_sample_value("lethe_swaps_total", {"result": "ok"})
1.0
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, TypeAlias

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as _PromCounter
from prometheus_client import Gauge as _PromGauge
from prometheus_client import Histogram as _PromHistogram

from gateway.guard.types import GuardMatch
from gateway.ledger.states import ForgetStatus, JobState

Kind = Literal["counter", "gauge", "histogram"]

# --- label vocabularies ------------------------------------------------------------------------

OTHER = "other"

# lethe_forget_requests_total counts requests entering a status, and one event that is not a status:
# "released", a job that ended without a version gave its requests back (they are `enforced` again).
RELEASED: Final = "released"
ForgetStateLabel: TypeAlias = ForgetStatus | Literal["released"]

# label -> the values it may take; anything else is exported as "other".
VOCABULARY: dict[str, frozenset[str]] = {
    "stream": frozenset({"true", "false"}),
    "finish_reason": frozenset({"stop", "length", "content_filter", "error", "cancelled"}),
    "stage": frozenset({"prompt", "output"}),
    "matcher": frozenset({"literal", "ngram", "cooccur", "semantic", "prompt"}),
    # block/redact: the output guard's actions; refuse/strict: what a prompt hit made the gateway do.
    "action": frozenset({"block", "redact", "refuse", "strict"}),
    "forget_state": frozenset({s.value for s in ForgetStatus} | {RELEASED}),
    "job_state": frozenset(s.value for s in JobState),
    "result": frozenset({"ok", "refused", "rolled_back", "failed"}),
    # unlearn_jobs.views.ALL_VIEWS (a test keeps the two equal): 11 values at most.
    "view": frozenset(
        {
            "paraphrase_heldout",
            "fill_blank",
            "multiple_choice",
            "yes_no",
            "json",
            "multilingual",
            "indirect",
            "best_of_n",
            "quantized_int8",
            "quantized_int4",
            "relearn",
        }
    ),
}

# Labels whose values the code picks from an open but small set: checked by shape, not by list.
_VERSION_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,63}")
_METHOD_SHAPE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_ROUTE_SHAPE = re.compile(r"/[A-Za-z0-9_/{}.-]{0,95}")


def _status(value: Any) -> str:
    text = str(value)
    return text if text.isdigit() and len(text) == 3 else OTHER


def _shaped(pattern: re.Pattern[str]) -> Callable[[Any], str]:
    def clean(value: Any) -> str:
        text = str(value)
        return text if pattern.fullmatch(text) else OTHER

    return clean


def _listed(allowed: frozenset[str]) -> Callable[[Any], str]:
    def clean(value: Any) -> str:
        text = str(value).lower() if isinstance(value, bool) else str(value)
        return text if text in allowed else OTHER

    return clean


# label name -> how a raw value becomes an exported one
_CLEAN: dict[str, Callable[[Any], str]] = {
    "route": _shaped(_ROUTE_SHAPE),
    "status": _status,
    "stream": _listed(VOCABULARY["stream"]),
    "finish_reason": _listed(VOCABULARY["finish_reason"]),
    "stage": _listed(VOCABULARY["stage"]),
    "matcher": _listed(VOCABULARY["matcher"]),
    "action": _listed(VOCABULARY["action"]),
    "state": _listed(VOCABULARY["forget_state"] | VOCABULARY["job_state"]),
    "method": _shaped(_METHOD_SHAPE),
    "result": _listed(VOCABULARY["result"]),
    "version": _shaped(_VERSION_SHAPE),
    "view": _listed(VOCABULARY["view"]),
}


# --- the metrics -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    """One metric as Prometheus sees it (after the scrape config's `ray_` strip)."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not self.name.startswith("lethe_"):
            raise ValueError(f"metric {self.name} must start with lethe_")
        if (self.kind == "counter") != self.name.endswith("_total"):
            raise ValueError(f"counter names, and only they, end in _total: {self.name}")
        if (self.kind == "histogram") != bool(self.buckets):
            raise ValueError(f"histograms, and only they, have buckets: {self.name}")
        unknown = [label for label in self.labels if label not in _CLEAN]
        if unknown:
            raise ValueError(f"labels without a bound: {unknown}")


_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_GUARD = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0)
_ENFORCE = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_JOB = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0)
_SWAP = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)

SPECS: tuple[MetricSpec, ...] = (
    # traffic
    MetricSpec(
        "lethe_requests_total",
        "counter",
        "HTTP requests answered, by route template and status code.",
        ("route", "status"),
    ),
    MetricSpec(
        "lethe_request_duration_seconds",
        "histogram",
        "Time from request to the last byte of the response (whole stream for SSE), by route template.",
        ("route",),
        _LATENCY,
    ),
    MetricSpec(
        "lethe_chat_completions_total",
        "counter",
        "Chat completions that ended, by streaming mode and finish reason (content_filter: the guard "
        "blocked or refused).",
        ("stream", "finish_reason"),
    ),
    MetricSpec(
        "lethe_chat_time_to_first_token_seconds",
        "histogram",
        "Time from request to the first released (guard-checked) text of a chat completion.",
        ("stream",),
        _LATENCY,
    ),
    MetricSpec("lethe_generated_tokens_total", "counter", "Completion tokens the engine generated for chats."),
    MetricSpec("lethe_prompt_tokens_total", "counter", "Prompt tokens of chats that reached the engine."),
    # guard
    # Its _count is the number of checks: no separate counter, one metric call per check on the hot path.
    MetricSpec(
        "lethe_guard_check_seconds",
        "histogram",
        "Duration of one guard check: a prompt check, or one step of the streaming output guard.",
        ("stage",),
        _GUARD,
    ),
    MetricSpec(
        "lethe_guard_hits_total",
        "counter",
        "Guard checks that matched forgotten content, once per matcher and action that fired.",
        ("stage", "matcher", "action"),
    ),
    MetricSpec(
        "lethe_guard_index_version",
        "gauge",
        "Forget-index version each ingress replica enforces (one series per replica process).",
    ),
    # forget requests
    MetricSpec(
        "lethe_forget_requests_total",
        "counter",
        "Forget requests that entered a state: enforced (acknowledged), unlearning (taken by a job), "
        "unlearned (its job published), released (its job ended without a version), failed.",
        ("state",),
    ),
    MetricSpec("lethe_forget_index_entries", "gauge", "Forget requests in the authority's index."),
    MetricSpec("lethe_forget_index_version", "gauge", "The authority's current forget-index version."),
    MetricSpec(
        "lethe_forget_time_to_enforce_seconds",
        "histogram",
        "POST /v1/forget on the authority: from receipt to every live guard replica enforcing it.",
        (),
        _ENFORCE,
    ),
    # unlearning jobs
    MetricSpec(
        "lethe_unlearn_jobs_total",
        "counter",
        "Unlearning jobs that reached a state (queued on submit, then their end state).",
        ("method", "state"),
    ),
    MetricSpec(
        "lethe_unlearn_job_duration_seconds",
        "histogram",
        "Wall time of finished unlearning jobs, by method and end state.",
        ("method", "state"),
        _JOB,
    ),
    # weights
    MetricSpec(
        "lethe_serving_version_info",
        "gauge",
        "1 for the weight version a process (LLM replica) serves, 0 for versions it served before.",
        ("version",),
    ),
    MetricSpec(
        "lethe_replica_unverified",
        "gauge",
        "1 while an LLM replica refuses traffic because it cannot verify the serving weight version "
        "(tampered or missing files), 0 otherwise (one series per replica process).",
    ),
    MetricSpec(
        "lethe_swaps_total", "counter", "Weight swaps by result: ok, refused, rolled_back, failed.", ("result",)
    ),
    MetricSpec("lethe_swap_duration_seconds", "histogram", "Duration of a weight swap, by result.", ("result",), _SWAP),
    MetricSpec(
        "lethe_raw_leakage_ratio",
        "gauge",
        "Share of forget-set probes the raw model (no guard) still answers, per weight version (0..1).",
        ("version",),
    ),
    MetricSpec(
        "lethe_raw_leakage_view_ratio",
        "gauge",
        "Per leakage view, share of the raw model's probes that leak per weight version (0..1): key-term "
        "views the share answered with every key term, choice views the accuracy (compare with chance).",
        ("version", "view"),
    ),
    MetricSpec(
        "lethe_unlearn_view_leakage_ratio",
        "gauge",
        "Per leakage view, what the latest finished unlearning job of a method measured on its candidate "
        "(key-term hit rate, or accuracy of a choice view), 0..1.",
        ("method", "view"),
    ),
    MetricSpec(
        "lethe_retain_score",
        "gauge",
        "Retain-set score of the raw model per weight version (0..1, higher keeps more utility).",
        ("version",),
    ),
)

SPEC_BY_NAME: dict[str, MetricSpec] = {spec.name: spec for spec in SPECS}


# --- backends ----------------------------------------------------------------------------------


class Instrument(Protocol):
    """One metric on one backend; `values` are already clean label values, in the spec's order."""

    def inc(self, values: tuple[str, ...], amount: float) -> None: ...

    def set(self, values: tuple[str, ...], value: float) -> None: ...

    def observe(self, values: tuple[str, ...], value: float) -> None: ...


class Backend(Protocol):
    def instrument(self, spec: MetricSpec) -> Instrument: ...


class _PromInstrument:
    def __init__(self, metric: Any, labelled: bool) -> None:
        self._metric = metric
        self._labelled = labelled

    def _child(self, values: tuple[str, ...]) -> Any:
        return self._metric.labels(*values) if self._labelled else self._metric

    def inc(self, values: tuple[str, ...], amount: float) -> None:
        self._child(values).inc(amount)

    def set(self, values: tuple[str, ...], value: float) -> None:
        self._child(values).set(value)

    def observe(self, values: tuple[str, ...], value: float) -> None:
        self._child(values).observe(value)


class PrometheusBackend:
    """prometheus_client metrics in `registry` (a fresh private one by default): for plain processes
    and tests, which read values with `registry.get_sample_value(...)`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)

    def instrument(self, spec: MetricSpec) -> Instrument:
        metric: _PromCounter | _PromGauge | _PromHistogram
        if spec.kind == "counter":
            metric = _PromCounter(spec.name, spec.help, spec.labels, registry=self.registry)
        elif spec.kind == "gauge":
            metric = _PromGauge(spec.name, spec.help, spec.labels, registry=self.registry)
        else:
            metric = _PromHistogram(spec.name, spec.help, spec.labels, registry=self.registry, buckets=spec.buckets)
        return _PromInstrument(metric, bool(spec.labels))


class _NullInstrument:
    def inc(self, values: tuple[str, ...], amount: float) -> None:
        pass

    def set(self, values: tuple[str, ...], value: float) -> None:
        pass

    def observe(self, values: tuple[str, ...], value: float) -> None:
        pass


class NullBackend:
    """Metrics off: every record is a no-op."""

    def instrument(self, spec: MetricSpec) -> Instrument:
        return _NullInstrument()


class MetricsRegistry:
    """The process's metrics on one backend; instruments are created on first use.

    >>> metrics = MetricsRegistry(PrometheusBackend())
    >>> metrics.inc("lethe_swaps_total", result="ok")
    """

    def __init__(self, backend: Backend, *, enabled: bool = True) -> None:
        self.backend = backend
        self.enabled = enabled
        self._instruments: dict[str, Instrument] = {}
        self._lock = threading.Lock()
        # (name, raw labels) -> clean values: the hot paths (a guard step, a chat) repeat a few label
        # sets, and cleaning them every time costs as much as the Ray call itself.
        self._clean_cache: dict[tuple[Any, ...], tuple[str, ...]] = {}

    def _get(self, name: str) -> tuple[MetricSpec, Instrument]:
        spec = SPEC_BY_NAME[name]
        instrument = self._instruments.get(name)
        if instrument is None:
            with self._lock:
                instrument = self._instruments.get(name)
                if instrument is None:
                    instrument = self._instruments[name] = self.backend.instrument(spec)
        return spec, instrument

    def _values(self, spec: MetricSpec, labels: dict[str, Any]) -> tuple[str, ...]:
        if not labels and not spec.labels:
            return ()
        key = (spec.name, *labels.items())
        values = self._clean_cache.get(key)
        if values is None:
            if labels.keys() != set(spec.labels):
                raise ValueError(f"{spec.name} takes labels {spec.labels}, got {tuple(labels)}")
            values = tuple(_CLEAN[label](labels[label]) for label in spec.labels)
            if len(self._clean_cache) >= 4096:  # raw values are unbounded in principle: stay bounded
                self._clean_cache.clear()
            self._clean_cache[key] = values
        return values

    def inc(self, name: str, amount: float = 1.0, **labels: Any) -> None:
        if self.enabled:
            spec, instrument = self._get(name)
            instrument.inc(self._values(spec, labels), amount)

    def set(self, name: str, value: float, **labels: Any) -> None:
        if self.enabled:
            spec, instrument = self._get(name)
            instrument.set(self._values(spec, labels), value)

    def observe(self, name: str, value: float, **labels: Any) -> None:
        if self.enabled:
            spec, instrument = self._get(name)
            instrument.observe(self._values(spec, labels), value)


_registry: MetricsRegistry | None = None
_registry_lock = threading.Lock()
_serving: dict[str, str] = {}  # the version this process last set as serving ("" = none yet)


def enabled_by_env(env: dict[str, str] | None = None) -> bool:
    """`LETHE_METRICS_ENABLED` as a bool (unset: on)."""
    raw = (os.environ if env is None else env).get("LETHE_METRICS_ENABLED", "")
    return raw.strip().lower() not in ("0", "false", "no", "off")


def configure(*, enabled: bool = True, backend: Backend | None = None) -> MetricsRegistry:
    """Choose this process's backend: `backend`, else a private registry. Ray processes pass Ray's
    (`gateway.serve.metrics.configure_ray_metrics`); tests pass their own PrometheusBackend;
    `enabled=False` records nothing."""
    global _registry
    chosen: Backend
    if not enabled:
        chosen = NullBackend()
    elif backend is not None:
        chosen = backend
    else:
        chosen = PrometheusBackend()
    with _registry_lock:
        _registry = MetricsRegistry(chosen, enabled=enabled)
        _serving.clear()
        return _registry


def registry() -> MetricsRegistry:
    """The process's registry; an unconfigured process gets a private registry, on or off by
    `LETHE_METRICS_ENABLED`."""
    current = _registry
    return current if current is not None else configure(enabled=enabled_by_env())


# --- helpers the code calls (one line at each site) --------------------------------------------


def record_request(route: str, status: int, seconds: float) -> None:
    """One HTTP request answered (any route): `route` is the route template, never the raw path."""
    metrics = registry()
    metrics.inc("lethe_requests_total", route=route, status=status)
    metrics.observe("lethe_request_duration_seconds", seconds, route=route)


def record_chat(
    stream: bool, finish_reason: str | None, prompt_tokens: int, completion_tokens: int, ttft_seconds: float | None
) -> None:
    """One chat completion ended (normally, blocked, failed or abandoned by its client)."""
    metrics = registry()
    mode = "true" if stream else "false"
    metrics.inc("lethe_chat_completions_total", stream=mode, finish_reason=finish_reason or "stop")
    if ttft_seconds is not None:
        metrics.observe("lethe_chat_time_to_first_token_seconds", ttft_seconds, stream=mode)
    if completion_tokens:
        metrics.inc("lethe_generated_tokens_total", completion_tokens)
    if prompt_tokens:
        metrics.inc("lethe_prompt_tokens_total", prompt_tokens)


async def observe_chat(chunks: AsyncIterator[Any], started: float, *, stream: bool) -> AsyncIterator[Any]:
    """Pass a chat's chunks (`GenerationChunk`s) through, recording time to first text, tokens and how
    it ended. `started` is `time.perf_counter()` at the request's arrival.

    >>> stream.chunks = observe_chat(stream.chunks, started, stream=body.stream)
    """
    ttft: float | None = None
    last: Any = None
    finish: str | None = "cancelled"  # until the stream ends on its own
    try:
        async for chunk in chunks:
            if ttft is None and chunk.text:
                ttft = time.perf_counter() - started
            last = chunk
            yield chunk
        finish = (last.finish_reason if last is not None else None) or "stop"
    except Exception:
        finish = "error"
        raise
    finally:
        closer = getattr(chunks, "aclose", None)
        if closer is not None:
            await closer()  # a client that left stops the generation below us too
        record_chat(
            stream, finish, getattr(last, "prompt_tokens", 0) or 0, getattr(last, "completion_tokens", 0) or 0, ttft
        )


class GuardMetrics:
    """The guard's observer (`gateway.guard.observer.GuardObserver`) on this process's metrics: each check
    in lethe_guard_check_seconds (its _count is the number of checks), each hit in lethe_guard_hits_total.

    >>> index = ForgetIndex.empty(embedder, observer=GuardMetrics())   # and every StreamGuard on it
    """

    def checked(self, stage: str, seconds: float) -> None:
        record_guard_check(stage, seconds)

    def hit(self, stage: str, matches: Sequence[GuardMatch]) -> None:
        record_guard_hits(stage, matches)


def record_guard_check(stage: str, seconds: float) -> None:
    """One guard check of `stage` (`prompt` or `output`) took `seconds`."""
    registry().observe("lethe_guard_check_seconds", seconds, stage=stage)


def record_guard_hits(stage: str, matches: Iterable[GuardMatch], action: str | None = None) -> None:
    """The matches of one check that the gateway acted on: one increment per distinct (matcher, action);
    `action` overrides the matches' own (a prompt hit: `refuse` or `strict`)."""
    fired = {(m.kind, action or m.action) for m in matches}
    metrics = registry()
    for matcher, acted in fired:
        metrics.inc("lethe_guard_hits_total", stage=stage, matcher=matcher, action=acted)


def set_guard_index_version(version: int) -> None:
    """The forget-index version this ingress replica enforces now."""
    registry().set("lethe_guard_index_version", float(version))


def record_forget_state(state: ForgetStateLabel, count: int = 1) -> None:
    """`count` forget requests entered `state` (enforced, unlearning, unlearned, released, failed)."""
    if count:
        registry().inc("lethe_forget_requests_total", float(count), state=state)


def set_forget_index(version: int, entries: int) -> None:
    """The authority's index after a change (or at start)."""
    metrics = registry()
    metrics.set("lethe_forget_index_version", float(version))
    metrics.set("lethe_forget_index_entries", float(entries))


def record_forget_enforced(seconds: float, version: int, entries: int) -> None:
    """A forget request is acknowledged: enforced by every live guard replica `seconds` after receipt."""
    registry().observe("lethe_forget_time_to_enforce_seconds", seconds)
    record_forget_state(ForgetStatus.ENFORCED)
    set_forget_index(version, entries)


def record_job(method: str, state: JobState, seconds: float | None = None) -> None:
    """An unlearning job reached `state`; `seconds`: its wall time, for end states."""
    metrics = registry()
    metrics.inc("lethe_unlearn_jobs_total", method=method, state=state)
    if seconds is not None:
        metrics.observe("lethe_unlearn_job_duration_seconds", float(seconds), method=method, state=state)


def record_job_views(method: str, rates: dict[str, float]) -> None:
    """The leakage views a finished job of `method` measured on its candidate: view name -> rate."""
    metrics = registry()
    for view, rate in rates.items():
        metrics.set("lethe_unlearn_view_leakage_ratio", float(rate), method=method, view=view)


def set_serving_version(version: str) -> None:
    """This process (an LLM replica) serves weight `version` now: its info series is 1, the version it
    served before drops to 0. Call it when a replica starts and after every swap that changed it."""
    metrics = registry()
    previous = _serving.get("version")
    if previous and previous != version:
        metrics.set("lethe_serving_version_info", 0.0, version=previous)
    metrics.set("lethe_serving_version_info", 1.0, version=version)
    _serving["version"] = version


def set_replica_unverified(unverified: bool) -> None:
    """This process (an LLM replica) refuses traffic (1) because its serving version failed
    verification, or serves a verified version (0). Call it at start and after every swap."""
    registry().set("lethe_replica_unverified", 1.0 if unverified else 0.0)


def record_swap(result: str, seconds: float) -> None:
    """A weight swap ended: `result` is ok, refused (checks failed before anything changed),
    rolled_back (a replica failed and the old version came back) or failed."""
    metrics = registry()
    metrics.inc("lethe_swaps_total", result=result)
    metrics.observe("lethe_swap_duration_seconds", float(seconds), result=result)


def record_leakage(version: str, leakage: float, retain: float | None = None) -> None:
    """A probe run of weight `version`: `leakage` is the raw model's leakage ratio on the forget set
    (0..1); `retain` its retain score (0..1) when the run scored retain prompts."""
    metrics = registry()
    metrics.set("lethe_raw_leakage_ratio", float(leakage), version=version)
    if retain is not None:
        metrics.set("lethe_retain_score", float(retain), version=version)


def record_view_leakage(version: str, rates: dict[str, float]) -> None:
    """A probe run's leakage views on weight `version`: view name -> rate (0..1)."""
    metrics = registry()
    for view, rate in rates.items():
        metrics.set("lethe_raw_leakage_view_ratio", float(rate), version=version, view=view)
