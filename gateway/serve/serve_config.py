"""The Serve config of Lethe's application, Ray-free: what `serve deploy` and KubeRay's `serveConfigV2`
run, written by `lethe config export --serve` from the same `LetheConfig` that `lethe serve` builds
its application from (`gateway.serve.builder.build_app`), so a cluster and a laptop cannot drift.

The config travels as the application's `args.lethe` (the values set, validated); `app_builder` validates it again in the
cluster, with the replicas' LETHE_* variables on top. Secrets never go into it: the admin token and
the ledger URL reach the replicas as environment variables (Kubernetes Secrets).

>>> doc = serve_config(load_config("k8s/overlays/gpu/lethe.yaml", env={}))
>>> config_from_args(doc["applications"][0]["args"], env={}).server.llm_num_gpus
1.0
"""

from __future__ import annotations

import os
from typing import Any

from gateway.config import SECRET_FIELDS, LetheConfig, config_from_mapping, load_config

APP_NAME = "lethe"
IMPORT_PATH = "gateway.serve.builder:app_builder"


def config_from_args(args: dict[str, Any], env: dict[str, str] | None = None) -> LetheConfig:
    """The config an application's `args` describe (`lethe`: the config itself; `config`: a file),
    with the LETHE_* variables of `env` (default: this process's) on top."""
    env = dict(os.environ) if env is None else env
    if "lethe" in args:
        return config_from_mapping(args["lethe"], env)
    return load_config(args.get("config"), env)


def logging_config(config: LetheConfig) -> dict[str, Any]:
    """Ray Serve's `LoggingConfig` of the app's replicas (and, in `lethe serve`, of its controller and
    proxies): no access line per internal call unless asked; JSON records carry the request id."""
    logs = config.logs
    return {
        "encoding": "JSON" if logs.format == "json" else "TEXT",
        "log_level": logs.level,
        "enable_access_log": logs.access_log,
    }


# How long a Serve router (in the ingress, before each chat request) waits for an LLM replica to say how
# many requests it runs. Ray's default, 0.1 s, is for an idle network; a CPU replica whose cores its
# engine saturates answers later than that, and a replica that misses the deadline is passed over: its
# cached queue length expires and every background probe misses again, so one replica ends up taking
# all the traffic while the other idles (seen here on a loaded 2-core machine). A replica that answers
# sooner costs no more; only a silent one delays the pick, by at most the deadline.
# Routers also run on their process's main event loop rather than a loop of their own: one thread
# hand-off less per request and per streamed item (what a handle returns is read on the main loop).
ROUTER_ENV = {
    "RAY_SERVE_QUEUE_LENGTH_RESPONSE_DEADLINE_S": "0.5",
    "RAY_SERVE_MAX_QUEUE_LENGTH_RESPONSE_DEADLINE_S": "2.0",
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
}

# The chat path's replicas (ingress and LLM) run their code on the replica's main event loop, where Serve
# receives requests and sends streamed items, instead of a loop in a thread of its own: each token crossed
# threads twice per replica. Measured on SmolLM2 at 8 concurrent streams (BENCHMARKS.md, "Gateway vs
# direct vLLM"): 80% of direct vLLM's tokens/s with the separate loop, 96% without. Their code keeps blocking
# work (guard checks, key lookups, weight staging) off the loop. The control deployments (forget
# authority, jobs, versions) keep Serve's default: their ledger calls may block.
HOT_PATH_ENV = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}


def serve_env(defaults: dict[str, str], env: dict[str, str] | None = None) -> dict[str, str]:
    """`defaults`, with the value `env` (default: this process's environment) sets instead, if any: an
    operator's own setting wins."""
    env = dict(os.environ) if env is None else env
    return {name: env.get(name, value) for name, value in defaults.items()}


def worker_env(config: LetheConfig) -> dict[str, str]:
    """Environment every replica of the app needs: each configures its metrics and logs from it."""
    return {
        "LETHE_METRICS_ENABLED": "1" if config.server.metrics_enabled else "0",
        "LETHE_LOG_LEVEL": config.logs.level,
        "LETHE_LOG_FORMAT": config.logs.format,
    }


def config_args(config: LetheConfig) -> dict[str, Any]:
    """The config as the application's `args.lethe`: the values the file (or environment) set, after
    validation; defaults stay the code's, so a new field does not rewrite every manifest."""
    return config.model_dump(mode="json", exclude_unset=True, exclude=set(SECRET_FIELDS))


def serve_config(config: LetheConfig) -> dict[str, Any]:
    """The Serve config (schema of `serve deploy` and of `serveConfigV2`) running the application
    `lethe serve` builds from `config`, without its secrets."""
    server = config.server
    return {
        "proxy_location": server.proxy_location,
        "http_options": {"host": server.host, "port": server.port},
        "logging_config": logging_config(config),
        "applications": [
            {
                "name": APP_NAME,
                "route_prefix": "/",
                "import_path": IMPORT_PATH,
                "args": {"lethe": config_args(config)},
                "runtime_env": {"env_vars": {**ROUTER_ENV, **worker_env(config)}},
                "logging_config": logging_config(config),
            }
        ],
    }
