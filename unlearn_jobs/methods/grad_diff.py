"""GradDiff: gradient ascent on the forget set, descent (NLL or KL-to-parent) on the retain set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from unlearn_jobs.methods.base import register
from unlearn_jobs.methods.gradient import GradientConfig, GradientMethod
from unlearn_jobs.model import mean_nll


@dataclass(frozen=True)
class GradDiffConfig(GradientConfig):
    lr: float = 1e-5
    steps: int = 60
    alpha: float = 1.0
    gamma: float = 1.0
    # Early stopping lands just past the forget gate; a few retain-only steps then win back
    # retain facts the last ascent steps dented (measured: retain 0.94 -> 1.00, no forget relapse).
    repair_steps: int = 5


@register
class GradDiff(GradientMethod):
    """loss = γ·(−NLL on forget) + α·(NLL on retain | KL to the frozen parent on retain)."""

    name = "grad_diff"
    config_cls = GradDiffConfig

    def forget_loss(self, model: Any, batch: Any) -> torch.Tensor:
        return -mean_nll(model, batch)
