"""The Serve config `lethe config export --serve` writes: the same config back, no secrets, Serve's schema;
the config refuses a SQLite ledger when replicas can span nodes."""

from __future__ import annotations

import pytest
from ray.serve.schema import ServeDeploySchema

from gateway.config import ConfigError, check_shared_ledger, config_from_mapping, load_config
from gateway.serve.serve_config import (
    APP_NAME,
    HOT_PATH_ENV,
    IMPORT_PATH,
    ROUTER_ENV,
    config_from_args,
    serve_config,
    serve_env,
    worker_env,
)


def test_round_trip_gives_the_same_config_and_passes_serves_schema(tmp_path):
    config = load_config(env={"LETHE_HOME": str(tmp_path), "LETHE_LLM_REPLICAS": "3", "LETHE_LOG_FORMAT": "json"})
    doc = serve_config(config)
    ServeDeploySchema.model_validate(doc)
    (app,) = doc["applications"]
    assert (app["name"], app["import_path"]) == (APP_NAME, IMPORT_PATH)
    assert config_from_args(app["args"], env={}) == config
    assert doc["logging_config"] == {"encoding": "JSON", "log_level": "INFO", "enable_access_log": False}
    # Every replica's settings, and the deadline the ingress's router gives a busy CPU replica to answer.
    assert app["runtime_env"]["env_vars"] == {**ROUTER_ENV, **worker_env(config)}
    assert float(app["runtime_env"]["env_vars"]["RAY_SERVE_QUEUE_LENGTH_RESPONSE_DEADLINE_S"]) > 0.1


def test_secrets_never_leave_in_the_export_but_replicas_read_them_from_env(tmp_path):
    secret_env = {
        "LETHE_HOME": str(tmp_path),
        "LETHE_ADMIN_TOKEN": "s3cret-token",
        "LETHE_DB_URL": "postgresql://u:pw@db/x",
    }
    doc = serve_config(load_config(env=secret_env))
    assert "s3cret-token" not in repr(doc) and "pw@db" not in repr(doc)
    inside = config_from_args(doc["applications"][0]["args"], env=secret_env)
    assert inside.admin_token == "s3cret-token" and inside.db_url == "postgresql://u:pw@db/x"


def test_only_values_set_are_exported_so_new_defaults_do_not_rewrite_manifests():
    config = config_from_mapping({"server": {"llm_replicas": 2}})
    assert serve_config(config)["applications"][0]["args"]["lethe"] == {"server": {"llm_replicas": 2}}


def test_app_builder_reads_a_file_too(tmp_path):
    path = tmp_path / "lethe.yaml"
    path.write_text("server:\n  port: 9100\n")
    assert config_from_args({"config": str(path)}, env={}).server.port == 9100


def test_sqlite_is_refused_when_replicas_can_span_nodes(tmp_path):
    base = {"LETHE_HOME": str(tmp_path)}
    check_shared_ledger(load_config(env=base))  # one machine: SQLite is fine
    joined = load_config(env={**base, "LETHE_RAY_ADDRESS": "10.0.0.1:6379"})
    assert joined.server.multi_node
    with pytest.raises(ConfigError, match="SQLite"):
        check_shared_ledger(joined)
    with pytest.raises(ConfigError, match="spans_nodes"):
        check_shared_ledger(load_config(env={**base, "LETHE_SPANS_NODES": "true"}))
    check_shared_ledger(load_config(env={**base, "LETHE_SPANS_NODES": "true", "LETHE_DB_URL": "postgresql://h/db"}))
    # A one-node cluster joined by address may say so and keep SQLite.
    check_shared_ledger(load_config(env={**base, "LETHE_RAY_ADDRESS": "auto", "LETHE_SPANS_NODES": "false"}))


def test_custom_resources_from_the_environment_are_json():
    config = load_config(env={"LETHE_LLM_RESOURCES": '{"node_a": 1}', "LETHE_INGRESS_RESOURCES": ""})
    assert config.server.llm_resources == {"node_a": 1.0} and config.server.ingress_resources == {}
    with pytest.raises(ConfigError, match=r"server.control_resources \(from \$LETHE_CONTROL_RESOURCES\)"):
        load_config(env={"LETHE_CONTROL_RESOURCES": "node_a=1"})


def _deployments(app) -> dict[str, dict]:
    """Every deployment of an application: name → ray_actor_options (the ingress's arguments hold the rest)."""
    found = {}
    pending = [app]
    while pending:
        deployment = pending.pop()._bound_deployment
        found[deployment.name] = deployment.ray_actor_options
        pending += [arg for arg in deployment.init_args if hasattr(arg, "_bound_deployment")]
    return found


def test_only_the_chat_paths_replicas_run_their_code_on_serves_loop(tmp_path):
    from gateway.serve.builder import build_app

    options = _deployments(build_app(load_config(env={"LETHE_HOME": str(tmp_path)})))
    assert set(options) == {"Gateway", "LLMServer", "ForgetAuthority", "UnlearnJobs", "ModelVersions"}
    for name, actor in options.items():
        env_vars = actor.get("runtime_env", {}).get("env_vars", {})
        chat_path = name in {"Gateway", "LLMServer"}
        assert (env_vars.get("RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD") == "0") == chat_path, name
    assert options["LLMServer"]["runtime_env"]["env_vars"]["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"


def test_an_operators_own_serve_setting_wins():
    assert serve_env(HOT_PATH_ENV, env={}) == HOT_PATH_ENV
    assert serve_env(HOT_PATH_ENV, env={"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "1"}) == {
        "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "1"
    }
    assert serve_env(ROUTER_ENV, env={})["RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP"] == "0"
