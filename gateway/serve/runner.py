"""`lethe serve` in the foreground: start (or join) Ray, deploy the app, wait for a signal, shut down."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import ray
from ray import serve

from gateway.config import ConfigError, LetheConfig, check_shared_ledger
from gateway.observability.logs import configure_logging
from gateway.serve.builder import APP_NAME, build_app
from gateway.serve.serve_config import ROUTER_ENV, logging_config, serve_env, worker_env

# `lethe serve`'s own lines ("deploying", "serving", errors) in text mode read as before: `lethe: …`.
log = logging.getLogger("lethe.serve")


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
    # Ray's driver-side INFO lines ("Started a local Ray instance", …) are not Lethe's to print.
    kwargs: dict[str, Any] = {"namespace": "lethe", "logging_level": logging.WARNING}
    if server.ray_address is None:
        # LLM replicas plus one unlearning job at a time.
        needed = server.llm_replicas * server.llm_num_cpus + config.unlearn.num_cpus
        # Logical CPUs: at least what the replicas ask for, so an over-subscribed laptop still starts.
        kwargs.update(
            # Always a new local instance of our own: without an address, ray.init would join any cluster
            # `ray start` left on this machine (/tmp/ray/ray_current_cluster), someone else's.
            address="local",
            num_cpus=max(os.cpu_count() or 1, int(needed + 0.999)),
            include_dashboard=False,
            # A local server is one machine's: Ray advertises loopback only, and a dashboard, if one
            # is ever turned on, listens there too.
            _node_ip_address="127.0.0.1",
            dashboard_host="127.0.0.1",
            _metrics_export_port=server.metrics_port,
        )
    else:
        kwargs["address"] = server.ray_address
    return kwargs


def local_ray_auth(home: Path, env: dict[str, str]) -> dict[str, str]:
    """The auth variables a local Ray starts with. Ray 2.60 turns token authentication on for a new
    local cluster when `RAY_AUTH_MODE` is unset, and keeps it on here: its gRPC servers listen on
    every interface, loopback advertised or not, and the token is what keeps other hosts out. The
    token Ray would create in ~/.ray is kept instead in `<home>/ray/auth_token` (mode 0600), this
    server's own. An explicit `RAY_AUTH_MODE` (e.g. `disabled` for tests) or token is respected.

    Only variables Ray reads when `ray.init` starts the cluster: the mode itself is left to Ray, whose
    config is read once at import (setting it afterwards would not reach this process).
    """
    if "RAY_AUTH_MODE" in env or env.get("RAY_AUTH_TOKEN") or env.get("RAY_AUTH_TOKEN_PATH"):
        return {}
    if (Path.home() / ".ray" / "auth_token").is_file():
        return {}
    token = home / "ray" / "auth_token"
    if not token.is_file():
        token.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    return {"RAY_AUTH_TOKEN_PATH": str(token)}


def run_gateway(config: LetheConfig) -> int:
    """Serve `config` until SIGTERM or Ctrl-C; the exit code of `lethe serve` (1: could not start).

    The caller has checked the model folder; everything Ray-related happens here.
    """
    configure_logging(config.logs.level, config.logs.format, text=_LetheTextFormatter())
    try:
        check_shared_ledger(config)
    except ConfigError as exc:
        log.error("error: %s", exc)
        return 2
    # A local server keeps Ray's token auth on (see local_ray_auth); a joined cluster (ray_address)
    # keeps its own settings: give this process its token ($RAY_AUTH_TOKEN, …) as for any Ray client.
    if config.server.ray_address is None:
        os.environ.update(local_ray_auth(config.home, dict(os.environ)))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray starts its workers at niceness 15 (meant for batch clusters): every replica, the vLLM
    # engines included, would then lose the CPU to any ordinary process on the node. A serving
    # cluster runs them at the default priority; the unlearning job task lowers its own (JOB_NICENESS).
    os.environ.setdefault("RAY_worker_niceness", "0")
    # Every Ray worker of a local Ray inherits these (each configures its metrics and logs from them).
    os.environ.update(worker_env(config))
    os.environ.update(serve_env(ROUTER_ENV))  # an operator's own value wins

    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    server = config.server
    code = 0
    ray.init(**_init_kwargs(config))
    # After ray.init: Ray's core worker installs a fatal-signal handler for SIGTERM that aborts
    # the driver; ours replaces it so SIGTERM and Ctrl-C both shut down cleanly.
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        serve.start(
            proxy_location=server.proxy_location,
            http_options={"host": server.host, "port": server.port},
            logging_config=logging_config(config),
        )
        log.info(
            "deploying %s (%d LLM / %d ingress replicas)",
            config.served_model_name,
            server.llm_replicas,
            server.ingress_replicas,
        )
        app_logs = logging_config(config)
        runner = threading.Thread(
            target=lambda: serve.run(build_app(config), name=APP_NAME, route_prefix="/", logging_config=app_logs),
            daemon=True,
        )
        runner.start()
        base = f"http://{server.host}:{server.port}"
        while runner.is_alive() and not stop.is_set():
            runner.join(0.5)
        if not stop.is_set():
            if not _wait_ready(f"{base}/readyz", 120):
                raise RuntimeError("the gateway did not become ready within 120 s")
            log.info("serving %s on %s (Ctrl-C to stop)", config.served_model_name, base)
            if server.ray_address is None:
                log.info(
                    "Prometheus metrics of every process on http://127.0.0.1:%d/metrics "
                    "(Ray's agent: ray_lethe_*; deploy/prometheus/prometheus.yml renames them lethe_*)",
                    server.metrics_port,
                )
            stop.wait()
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # deployment failures: say why (in the CLI's error format), then clean up below
        log.error("error: could not start the gateway: %s", exc)
        code = 1
    finally:
        try:
            serve.shutdown()  # type: ignore[no-untyped-call]  # Serve's shutdown() has no annotations
        finally:
            ray.shutdown()
    return code


class _LetheTextFormatter(logging.Formatter):
    """Text mode: `lethe serve`'s own lines read `lethe: …` (what operators and tests look for);
    other loggers keep the time, level and name."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if record.name == log.name:
            return f"lethe: {record.getMessage()}"
        return super().format(record)
