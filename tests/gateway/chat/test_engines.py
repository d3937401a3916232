"""gateway.chat.engines.base: `engine.backend` picks an engine by registry name or by import path."""

from __future__ import annotations

import pytest

from gateway.chat.engines.base import ENGINES
from gateway.config import load_config
from tests.support.engines import SmokeFailpointEngine


def test_a_backend_is_a_registered_name_or_an_import_path(tmp_path):
    assert ENGINES.resolve("vllm").__name__ == "VLLMEngine"
    config = load_config(
        env={"LETHE_HOME": str(tmp_path), "LETHE_ENGINE": "tests.support.engines:SmokeFailpointEngine"}
    )
    engine = ENGINES.create(config.engine.backend, config, replica="llm-1")
    assert isinstance(engine, SmokeFailpointEngine)
    assert engine.info().replica == "llm-1"  # the wrapped vLLM engine knows its replica too


def test_a_bad_backend_is_refused_with_its_reason():
    with pytest.raises(ValueError, match="unknown engine backend 'tgi'"):
        ENGINES.resolve("tgi")
    with pytest.raises(ValueError, match="cannot be imported"):
        ENGINES.resolve("tests.support.no_such_module:Engine")
    with pytest.raises(ValueError, match="is not an Engine subclass"):
        ENGINES.resolve("gateway.config:LetheConfig")
