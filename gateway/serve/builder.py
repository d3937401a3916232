"""The Serve application: which deployments run, how many replicas of each, on what resources, wired how."""

from __future__ import annotations

from ray import serve
from ray.serve import Application

from gateway.chat.engines.vllm import ENGINE_ENV
from gateway.config import LetheConfig, load_config
from gateway.serve.deployments import ForgetAuthority, Gateway, LLMServer, ModelVersions, UnlearnJobs

APP_NAME = "lethe"
LLM_DEPLOYMENT = "LLMServer"
INGRESS_DEPLOYMENT = "Gateway"
AUTHORITY_DEPLOYMENT = "ForgetAuthority"
JOBS_DEPLOYMENT = "UnlearnJobs"
VERSIONS_DEPLOYMENT = "ModelVersions"


def app_builder(args: dict[str, str]) -> Application:
    """Entry point for `serve run gateway.serve.builder:app_builder config=FILE` and KubeRay's
    `serveConfigV2` (`import_path: gateway.serve.builder:app_builder`); LETHE_* variables apply too."""
    return build_app(load_config(args.get("config")))


def build_app(config: LetheConfig) -> Application:
    """The Serve application for `config`: ingress replicas in front of LLM replicas, plus the one
    forget authority, job manager and version controller."""
    config_json = config.model_dump_json()
    server = config.server
    llm = serve.deployment(
        name=LLM_DEPLOYMENT,
        num_replicas=server.llm_replicas,
        # Admit as many requests as the engine batches; Serve's default (5) would queue them here.
        max_ongoing_requests=config.engine.max_num_seqs,
        ray_actor_options={
            "num_cpus": server.llm_num_cpus,
            "num_gpus": server.llm_num_gpus,
            "runtime_env": {"env_vars": dict(ENGINE_ENV)},
        },
        health_check_period_s=10,
        health_check_timeout_s=30,
    )(LLMServer).bind(config_json)
    versions = serve.deployment(
        name=VERSIONS_DEPLOYMENT, num_replicas=1, max_ongoing_requests=1000, ray_actor_options={"num_cpus": 0}
    )(ModelVersions).bind(config_json, llm)
    authority = serve.deployment(
        name=AUTHORITY_DEPLOYMENT,
        num_replicas=1,
        # Every ingress replica keeps a long-poll open here: admit them all.
        max_ongoing_requests=10_000,
        ray_actor_options={"num_cpus": 0},
    )(ForgetAuthority).bind(config_json, versions)
    jobs = serve.deployment(
        name=JOBS_DEPLOYMENT, num_replicas=1, max_ongoing_requests=1000, ray_actor_options={"num_cpus": 0}
    )(UnlearnJobs).bind(config_json, versions)
    ingress = serve.deployment(
        name=INGRESS_DEPLOYMENT,
        num_replicas=server.ingress_replicas,
        max_ongoing_requests=1000,
        # The ingress only parses, routes and checks text: it must not take a core from an engine.
        ray_actor_options={"num_cpus": 0},
    )(Gateway).bind(llm, authority, jobs, versions, config_json)
    return ingress
