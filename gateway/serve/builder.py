"""The Serve application: which deployments run, how many replicas of each, on what resources, wired how."""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from gateway.chat.engines.vllm import ENGINE_ENV
from gateway.config import LetheConfig, check_shared_ledger
from gateway.serve.deployments import ForgetAuthority, Gateway, LLMServer, ModelVersions, UnlearnJobs
from gateway.serve.serve_config import APP_NAME, HOT_PATH_ENV, config_from_args, logging_config, serve_env

__all__ = ["APP_NAME", "app_builder", "build_app"]

LLM_DEPLOYMENT = "LLMServer"
INGRESS_DEPLOYMENT = "Gateway"
AUTHORITY_DEPLOYMENT = "ForgetAuthority"
JOBS_DEPLOYMENT = "UnlearnJobs"
VERSIONS_DEPLOYMENT = "ModelVersions"


def app_builder(args: dict[str, Any]) -> Application:
    """Entry point of the Serve config `lethe config export --serve` writes (`serve deploy`, KubeRay's
    `serveConfigV2`): `args.lethe` is the config itself; `serve run gateway.serve.builder:app_builder
    config=FILE` reads a file instead. The process's LETHE_* variables apply on top (secrets: the
    admin token and the ledger URL come from them)."""
    return build_app(config_from_args(args))


def _actor_options(num_cpus: float, resources: dict[str, float], **extra: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"num_cpus": num_cpus, **extra}
    if resources:
        options["resources"] = dict(resources)
    return options


def build_app(config: LetheConfig) -> Application:
    """The Serve application for `config`: ingress replicas in front of LLM replicas, plus the one
    forget authority, job manager and version controller."""
    check_shared_ledger(config)
    config_json = config.model_dump_json()
    server = config.server
    logs = logging_config(config)
    control = server.control_resources
    llm = serve.deployment(
        name=LLM_DEPLOYMENT,
        num_replicas=server.llm_replicas,
        # Admit as many requests as the engine batches; Serve's default (5) would queue them here.
        max_ongoing_requests=config.engine.max_num_seqs,
        # Beyond that, a bounded queue per caller: a flood gets 503s instead of an unbounded backlog.
        max_queued_requests=server.llm_max_queued_requests,
        ray_actor_options=_actor_options(
            server.llm_num_cpus,
            server.llm_resources,
            num_gpus=server.llm_num_gpus,
            runtime_env={"env_vars": {**ENGINE_ENV, **serve_env(HOT_PATH_ENV)}},
        ),
        health_check_period_s=10,
        health_check_timeout_s=30,
        logging_config=logs,
    )(LLMServer).bind(config_json)
    versions = serve.deployment(
        name=VERSIONS_DEPLOYMENT,
        num_replicas=1,
        max_ongoing_requests=1000,
        ray_actor_options=_actor_options(0, control),
        logging_config=logs,
    )(ModelVersions).bind(config_json, llm)
    authority = serve.deployment(
        name=AUTHORITY_DEPLOYMENT,
        num_replicas=1,
        # Every ingress replica keeps a long-poll open here: admit them all.
        max_ongoing_requests=10_000,
        ray_actor_options=_actor_options(0, control),
        logging_config=logs,
    )(ForgetAuthority).bind(config_json, versions)
    jobs = serve.deployment(
        name=JOBS_DEPLOYMENT,
        num_replicas=1,
        max_ongoing_requests=1000,
        ray_actor_options=_actor_options(0, control),
        logging_config=logs,
    )(UnlearnJobs).bind(config_json, versions)
    ingress = serve.deployment(
        name=INGRESS_DEPLOYMENT,
        num_replicas=server.ingress_replicas,
        max_ongoing_requests=server.max_ongoing_requests,
        max_queued_requests=server.max_queued_requests,
        # The ingress only parses, routes and checks text: it must not take a core from an engine.
        ray_actor_options=_actor_options(
            0, server.ingress_resources, runtime_env={"env_vars": serve_env(HOT_PATH_ENV)}
        ),
        logging_config=logs,
    )(Gateway).bind(llm, authority, jobs, versions, config_json)
    return ingress
