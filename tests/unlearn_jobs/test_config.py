"""Method configs, overrides and the registry."""

from __future__ import annotations

import pytest

from unlearn_jobs.config import parse_assignments
from unlearn_jobs.evaluate import Gates
from unlearn_jobs.methods import available_methods, get_method
from unlearn_jobs.methods.edit import EditConfig
from unlearn_jobs.methods.grad_diff import GradDiffConfig
from unlearn_jobs.methods.npo import NPOConfig


def test_registry_has_the_three_methods():
    assert {"grad_diff", "npo", "edit"} <= set(available_methods())
    assert get_method("npo").config_cls is NPOConfig
    with pytest.raises(ValueError, match="unknown unlearning method"):
        get_method("sgd_magic")


def test_overrides_coerce_cli_strings():
    cfg = GradDiffConfig.from_overrides(
        parse_assignments(
            ["lr=2e-5", "steps=12", "layers=-2,-1", "retain_loss=kl", "early_stop=false", "max_delta=none"]
        )
    )
    assert cfg.lr == 2e-5 and cfg.steps == 12 and cfg.layers == (-2, -1)
    assert cfg.retain_loss == "kl" and cfg.early_stop is False and cfg.max_delta is None
    assert NPOConfig.from_overrides({"beta": 0.2}).beta == 0.2
    assert EditConfig().params == "mlp"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"learning_rate": 1e-5}, "unknown"),
        ({"lr": "fast"}, "lr"),
        ({"lr": -1}, "lr"),
        ({"steps": 0}, "steps"),
        ({"steps": "1.5"}, "steps"),
        ({"retain_loss": "mse"}, "retain_loss"),
        ({"params": "embeddings"}, "params"),
        ({"beta": 0}, "beta"),
    ],
)
def test_bad_overrides_raise_value_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        NPOConfig.from_overrides(overrides)


def test_configs_are_frozen_and_gates_validate():
    cfg = GradDiffConfig()
    with pytest.raises(AttributeError):
        cfg.lr = 1.0  # type: ignore[misc]
    assert Gates.from_overrides({"forget_hit_rate_max": "0.1"}).forget_hit_rate_max == 0.1
    with pytest.raises(ValueError):
        Gates.from_overrides({"perplexity_max_ratio": 0.5})
    with pytest.raises(ValueError):
        parse_assignments(["lr"])
