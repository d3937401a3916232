"""Edit: rewrite forgotten facts to an "I don't know" answer by a few-step fine-tune of chosen MLP layers only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from unlearn_jobs.data import REFUSAL_TARGET, EncodedExample, collate, encode_examples
from unlearn_jobs.methods.base import UnlearnData, register
from unlearn_jobs.methods.gradient import GradientConfig, GradientMethod
from unlearn_jobs.model import mean_nll, num_layers


@dataclass(frozen=True)
class EditConfig(GradientConfig):
    lr: float = 1e-4
    steps: int = 60
    # Only MLP weights: in ROME's causal traces the subject->attribute recall sits in mid-layer MLPs.
    params: str = "mlp"
    # A rewrite has a fixed target, so it runs its steps instead of stopping at the first
    # non-leaking (often half-formed) output.
    early_stop: bool = False
    target: str = REFUSAL_TARGET
    # Optional push away from the old answer as well as toward the refusal (0 = pure rewrite).
    ascent_weight: float = 0.0
    # No weight moves further than this from the parent. Unbounded, the rewrite spends its steps
    # raising perplexity: rejected on the perplexity gate on the tiny model (lr 3e-3) and on
    # SmolLM2-135M at 40 x 5 (1.32x); bounded at 0.005 it passed every gate (docs/unlearning.md, run 4).
    max_delta: float | None = 0.005

    def validate(self) -> None:
        super().validate()
        if not self.target.strip():
            raise ValueError("target must not be empty")
        if self.ascent_weight < 0:
            raise ValueError("ascent_weight must be >= 0")


@register
class Edit(GradientMethod):
    """Localised rewrite: NLL of the refusal on forget prompts + α·retain loss, MLPs of middle layers only.

    Unlike GradDiff/NPO it has a bounded objective (it converges on a new answer rather than
    pushing likelihood down forever), so the model keeps answering — just not the forgotten fact.
    """

    name = "edit"
    config_cls = EditConfig
    config: EditConfig

    def default_layers(self, model: Any) -> tuple[int, ...] | None:
        # The middle of the stack, [L/4, L/2]: early enough to catch the subject, late enough to leave syntax alone.
        total = num_layers(model)
        if total <= 2:
            return tuple(range(total))
        lo, hi = total // 4, max(total // 4 + 1, total // 2 + 1)
        return tuple(range(lo, min(hi, total)))

    def forget_items(self, tokenizer: Any, data: UnlearnData) -> list[EncodedExample]:
        cfg = self.config
        self._old = encode_examples(tokenizer, data.forget, data.fmt, cfg.max_length) if cfg.ascent_weight else []
        return encode_examples(tokenizer, data.forget, data.fmt, cfg.max_length, target=cfg.target)

    def forget_loss(self, model: Any, batch: Any) -> torch.Tensor:
        loss = mean_nll(model, batch)
        if self.config.ascent_weight and self._old:
            # Same examples, old answers: the refusal batch's indices line up with `_old`.
            old = collate([self._old[i] for i in batch.indices.tolist()], 0).to(batch.input_ids.device)
            loss = loss - self.config.ascent_weight * mean_nll(model, old)
        return loss
