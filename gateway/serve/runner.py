"""`lethe serve` in the foreground: start (or join) Ray, deploy the app, wait for a signal, shut down."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import ray
from ray import serve

from gateway.config import LetheConfig
from gateway.serve.builder import APP_NAME, build_app


def _wait_ready(url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    return False


def _init_kwargs(config: LetheConfig) -> dict[str, Any]:
    server = config.server
    kwargs: dict[str, Any] = {"namespace": "lethe", "logging_level": logging.WARNING}
    if server.ray_address is None:
        # LLM replicas plus one unlearning job at a time.
        needed = server.llm_replicas * server.llm_num_cpus + config.unlearn.num_cpus
        # Logical CPUs: at least what the replicas ask for, so an over-subscribed laptop still starts.
        kwargs.update(
            num_cpus=max(os.cpu_count() or 1, int(needed + 0.999)),
            include_dashboard=False,
            _metrics_export_port=server.metrics_port,
        )
    else:
        kwargs["address"] = server.ray_address
    return kwargs


def run_gateway(config: LetheConfig) -> int:
    """Serve `config` until SIGTERM or Ctrl-C; the exit code of `lethe serve` (1: could not start).

    The caller has checked the model folder; everything Ray-related happens here.
    """
    # A local dev cluster is reachable only from this machine: Ray 2.60's token auth would make
    # every worker and CLI need the token. A real cluster (ray_address set) keeps its own setting.
    if config.server.ray_address is None:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Every Ray worker inherits this (each configures its metrics from it): on/off for the whole app.
    os.environ["LETHE_METRICS_ENABLED"] = "1" if config.server.metrics_enabled else "0"

    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        print(f"lethe: received {signal.Signals(signum).name}, shutting down", file=sys.stderr)
        stop.set()

    server = config.server
    code = 0
    ray.init(**_init_kwargs(config))
    # After ray.init: Ray's core worker installs a fatal-signal handler for SIGTERM that aborts
    # the driver; ours replaces it so SIGTERM and Ctrl-C both shut down cleanly.
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        serve.start(http_options={"host": server.host, "port": server.port})
        print(
            f"lethe: deploying {config.served_model_name} "
            f"({server.llm_replicas} LLM / {server.ingress_replicas} ingress replicas)",
            file=sys.stderr,
        )
        runner = threading.Thread(
            target=lambda: serve.run(build_app(config), name=APP_NAME, route_prefix="/"), daemon=True
        )
        runner.start()
        base = f"http://{server.host}:{server.port}"
        while runner.is_alive() and not stop.is_set():
            runner.join(0.5)
        if not stop.is_set():
            if not _wait_ready(f"{base}/readyz", 120):
                raise RuntimeError("the gateway did not become ready within 120 s")
            print(f"lethe: serving {config.served_model_name} on {base} (Ctrl-C to stop)", file=sys.stderr)
            if server.ray_address is None:
                print(
                    f"lethe: Prometheus metrics of every process on http://127.0.0.1:{server.metrics_port}/metrics "
                    f"(Ray's agent: ray_lethe_*; deploy/prometheus/prometheus.yml renames them lethe_*)",
                    file=sys.stderr,
                )
            stop.wait()
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # deployment failures: say why (in the CLI's error format), then clean up below
        print(f"lethe: error: could not start the gateway: {exc}", file=sys.stderr)
        code = 1
    finally:
        try:
            serve.shutdown()  # type: ignore[no-untyped-call]  # Serve's shutdown() has no annotations
        finally:
            ray.shutdown()
    return code
