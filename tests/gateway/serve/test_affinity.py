"""Serving processes stay off the CPU engines' cores (gateway.serve.affinity)."""

from __future__ import annotations

import os

import pytest

from gateway.config import load_config
from gateway.serve import affinity


def config(tmp_path, **env):  # type: ignore[no-untyped-def]
    return load_config(env={"LETHE_HOME": str(tmp_path), **env})


def test_the_engine_cores_of_a_node(tmp_path):
    one = config(tmp_path)
    assert affinity.node_engine_cores(one, 8, None) == {0}
    two = config(tmp_path, LETHE_LLM_REPLICAS="2")
    assert affinity.node_engine_cores(two, 8, None) == {0, 1}
    assert affinity.node_engine_cores(two, 1, None) == {0}  # more replicas than cores: they share
    assert affinity.node_engine_cores(one, 8, "2-3") == {2, 3}  # the operator's binding wins
    assert affinity.node_engine_cores(one, 8, "auto") is None  # unknown: nothing is moved


@pytest.fixture
def node(monkeypatch):  # type: ignore[no-untyped-def]
    """A 4-core node whose affinity calls are recorded instead of made."""
    calls: list[set[int]] = []
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(affinity, "set_process_affinity", lambda cores: calls.append(set(cores)))
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    return calls


def test_a_local_server_starts_ray_off_the_engine_cores(tmp_path, node):
    assert affinity.keep_off_engine_cores(config(tmp_path, LETHE_LLM_REPLICAS="2")) == {2, 3}
    assert node == [{2, 3}]


def test_nothing_moves_without_spare_cores_for_gpus_or_a_joined_cluster(tmp_path, node):
    assert affinity.keep_off_engine_cores(config(tmp_path, LETHE_LLM_REPLICAS="4")) is None
    assert affinity.keep_off_engine_cores(config(tmp_path, LETHE_RAY_ADDRESS="127.0.0.1:6379")) is None
    assert affinity.keep_off_engine_cores(config(tmp_path, LETHE_LLM_NUM_GPUS="1")) is None
    assert node == []


def test_this_process_can_be_moved_and_moved_back():
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity on this platform")
    before = os.sched_getaffinity(0)
    try:
        affinity.set_process_affinity({min(before)})
        assert os.sched_getaffinity(0) == {min(before)}
    finally:
        affinity.set_process_affinity(before)
    assert os.sched_getaffinity(0) == before
