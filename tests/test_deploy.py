"""Deployment files stay valid: the k8s kustomization renders and its Lethe config validates."""

from __future__ import annotations

import importlib
import shutil
import subprocess
from pathlib import Path

import yaml

from gateway.config import LetheConfig

K8S = Path(__file__).resolve().parents[1] / "k8s"


def rendered_documents() -> list[dict]:
    if shutil.which("kubectl"):
        out = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, check=True)
        return list(yaml.safe_load_all(out.stdout))
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    return [doc for name in listed for doc in yaml.safe_load_all((K8S / name).read_text())]


def test_rayservice_points_at_a_real_app_builder_and_valid_config():
    docs = {doc["kind"]: doc for doc in rendered_documents()}
    assert set(docs) == {"ConfigMap", "PersistentVolumeClaim", "RayService"}
    serve_config = yaml.safe_load(docs["RayService"]["spec"]["serveConfigV2"])
    (app,) = serve_config["applications"]
    module, _, attr = app["import_path"].partition(":")
    assert callable(getattr(importlib.import_module(module), attr))
    assert docs["RayService"]["spec"]["rayClusterConfig"]["rayVersion"] == "2.60.0"
    config = LetheConfig.model_validate(yaml.safe_load(docs["ConfigMap"]["data"]["lethe.yaml"]))
    assert config.server.llm_num_gpus == 1
