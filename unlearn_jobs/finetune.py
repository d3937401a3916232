"""Fine-tune a causal LM on facts until it answers them: builds the subject model and the retrain-from-base anchor."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from unlearn_jobs.config import OverridableConfig
from unlearn_jobs.data import BatchStream, ExampleSet, PromptFormat, encode_examples, pad_id_of


@dataclass(frozen=True)
class FinetuneConfig(OverridableConfig):
    lr: float = 5e-5
    epochs: int = 10
    batch_size: int = 8
    max_length: int = 128
    weight_decay: float = 0.0
    warmup_steps: int = 10
    grad_clip: float = 1.0
    # Train on the paraphrases too, so the model knows each fact however it is asked.
    paraphrases: bool = True
    # Stop early once the share of training questions answered with all key terms reaches this (0 = never check).
    target_hit_rate: float = 0.0
    check_every_epochs: int = 5
    seed: int = 0
    # Train only these decoder layers (negative from the top; None = the whole model) and these
    # weights in them ("all" | "mlp" | "mlp_down" | "attn"): on CPU, freezing the bottom of the
    # stack cuts the backward pass to the layers that learn.
    layers: tuple[int, ...] | None = None
    params: str = "all"

    def validate(self) -> None:
        if not 0 < self.lr < 10:
            raise ValueError("lr must be in (0, 10)")
        if self.epochs < 1 or self.batch_size < 1 or self.check_every_epochs < 1:
            raise ValueError("epochs, batch_size and check_every_epochs must be >= 1")
        if not 0.0 <= self.target_hit_rate <= 1.0:
            raise ValueError("target_hit_rate must be in [0, 1]")
        if self.max_length < 8 or self.warmup_steps < 0 or self.grad_clip <= 0:
            raise ValueError("max_length >= 8, warmup_steps >= 0 and grad_clip > 0 required")
        if self.params not in ("all", "mlp", "mlp_down", "attn"):
            raise ValueError("params must be one of all, mlp, mlp_down, attn")


@dataclass(frozen=True)
class FinetuneProgress:
    step: int
    total_steps: int
    epoch: int
    loss: float
    hit_rate: float | None = None


@dataclass(frozen=True)
class FinetuneResult:
    steps: int
    epochs: int
    final_loss: float
    hit_rate: float | None
    wall_s: float


def finetune(
    model: Any,
    tokenizer: Any,
    examples: ExampleSet,
    config: FinetuneConfig = FinetuneConfig(),
    *,
    fmt: PromptFormat = PromptFormat(),
    device: Any = None,
    progress: Callable[[FinetuneProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> FinetuneResult:
    """Train `model` in place on question→answer (and paraphrase→answer) pairs."""
    from unlearn_jobs.evaluate import Evaluator

    began = time.monotonic()
    torch.manual_seed(config.seed)
    device = device if device is not None else next(model.parameters()).device
    items = encode_examples(tokenizer, examples, fmt, config.max_length, with_paraphrases=config.paraphrases)
    if not items:
        raise ValueError("nothing to fine-tune on")
    stream = BatchStream(items, config.batch_size, pad_id_of(tokenizer), config.seed)
    per_epoch = max(1, -(-len(items) // config.batch_size))
    total = per_epoch * config.epochs
    from unlearn_jobs.model import select_trainable

    params = select_trainable(model, config.layers, config.params)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    # Linear warmup then linear decay: memorisation is stable with it and erratic without.
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(
            (s + 1) / max(1, config.warmup_steps), max(0.05, (total - s) / max(1, total - config.warmup_steps))
        ),
    )
    # Only examples with key terms can be judged answered (plain texts have none).
    probes = ExampleSet(tuple(e for e in examples if e.key_terms))
    checker = (
        Evaluator(tokenizer, probes, ExampleSet(), (), fmt=fmt, paraphrases=False)
        if config.target_hit_rate > 0 and len(probes)
        else None
    )
    from unlearn_jobs.model import mean_nll

    step, loss_value, hit = 0, float("nan"), None
    epoch = 0
    model.train()
    try:
        for epoch in range(1, config.epochs + 1):
            for _ in range(per_epoch):
                loss = mean_nll(model, stream.next().to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
                optimizer.step()
                schedule.step()
                step += 1
                loss_value = float(loss.detach())
                if progress:
                    progress(FinetuneProgress(step, total, epoch, loss_value, hit))
            if should_stop and should_stop():
                break
            if checker and (epoch % config.check_every_epochs == 0 or epoch == config.epochs):
                hit = checker.forget_scores(model).questions.hit_rate
                model.train()
                if progress:
                    progress(FinetuneProgress(step, total, epoch, loss_value, hit))
                if hit >= config.target_hit_rate:
                    break
    finally:
        model.eval()
        for p in model.parameters():
            p.requires_grad_(True)
    return FinetuneResult(step, epoch, loss_value, hit, time.monotonic() - began)
