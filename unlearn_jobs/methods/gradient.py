"""The optimisation loop shared by loss-based methods: γ·forget_loss + α·retain_loss on chosen weights."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch

from unlearn_jobs.data import BatchStream, EncodedExample, encode_examples, pad_id_of
from unlearn_jobs.methods.base import MethodConfig, MethodRun, StepCallback, StepInfo, UnlearnData, UnlearningMethod
from unlearn_jobs.model import kl_to_reference, mean_nll, select_trainable


@dataclass(frozen=True)
class GradientConfig(MethodConfig):
    # Weight of the forget term (γ) and of the retain term (α).
    gamma: float = 1.0
    alpha: float = 1.0
    # "nll" keeps retain answers likely; "kl" keeps the whole output distribution of the frozen parent.
    retain_loss: str = "nll"
    retain_batch_size: int = 8
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    # Retain-only steps after the forget gate holds: repair collateral damage, then re-check.
    repair_steps: int = 0
    # Constrained fine-tuning: no weight moves more than this from the parent (None = unbounded).
    max_delta: float | None = None
    # At least this many passes over the forget prompts: the step budget grows with the forget set
    # (`steps` is then a floor; 0 = `steps` alone): a budget tuned on 6 facts is a third of it on 20.
    min_passes: float = 0.0

    def validate(self) -> None:
        super().validate()
        if self.gamma <= 0 or self.alpha < 0:
            raise ValueError("gamma must be > 0 (it weighs the forget term) and alpha >= 0")
        if self.retain_loss not in ("nll", "kl"):
            raise ValueError('retain_loss must be "nll" or "kl"')
        if self.retain_batch_size < 1:
            raise ValueError("retain_batch_size must be >= 1")
        if self.grad_clip <= 0:
            raise ValueError("grad_clip must be > 0")
        if self.repair_steps < 0:
            raise ValueError("repair_steps must be >= 0")
        if self.max_delta is not None and self.max_delta <= 0:
            raise ValueError("max_delta must be > 0")
        if not 0.0 <= self.min_passes <= 100.0:
            raise ValueError("min_passes must be in [0, 100]")

    def total_steps(self, forget_items: int) -> int:
        """`steps`, or more when `min_passes` over `forget_items` prompts needs more."""
        return max(self.steps, math.ceil(self.min_passes * forget_items / self.batch_size))


class GradientMethod(UnlearningMethod):
    """Subclasses define `forget_loss`; the loop, retain term, layer selection and stopping live here."""

    config: GradientConfig
    config_cls = GradientConfig

    def needs_reference(self) -> bool:
        return self.config.retain_loss == "kl"

    def default_layers(self, model: Any) -> tuple[int, ...] | None:
        return None

    def forget_items(self, tokenizer: Any, data: UnlearnData) -> list[EncodedExample]:
        return encode_examples(tokenizer, data.forget, data.fmt, self.config.max_length)

    def prepare(self, model: Any, reference: Any | None, forget: list[EncodedExample], device: Any) -> None:
        """Hook before the first step (NPO caches the reference's forget log-likelihoods here)."""

    def forget_loss(self, model: Any, batch: Any) -> torch.Tensor:
        raise NotImplementedError

    def retain_loss(self, model: Any, reference: Any | None, batch: Any) -> torch.Tensor:
        if self.config.retain_loss == "kl":
            return kl_to_reference(model, reference, batch)
        return mean_nll(model, batch)

    def run(self, model: Any, tokenizer: Any, data: UnlearnData, *, device: Any, on_step: StepCallback) -> MethodRun:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        if len(data.forget) == 0:
            raise ValueError("forget set is empty")
        reference = None
        if self.needs_reference():
            reference = copy.deepcopy(model).eval()
            for p in reference.parameters():
                p.requires_grad_(False)
        layers = cfg.layers if cfg.layers is not None else self.default_layers(model)
        params = select_trainable(model, layers, cfg.params)
        start = [p.detach().clone() for p in params] if cfg.max_delta is not None else None
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        pad = pad_id_of(tokenizer)
        forget = self.forget_items(tokenizer, data)
        forget_stream = BatchStream(forget, cfg.batch_size, pad, cfg.seed)
        retain_items = encode_examples(tokenizer, data.retain, data.fmt, cfg.max_length) if len(data.retain) else []
        retain_stream = BatchStream(retain_items, cfg.retain_batch_size, pad, cfg.seed + 1) if retain_items else None
        self.prepare(model, reference, forget, device)

        def step(phase: str, step_no: int, total: int) -> StepInfo:
            f_loss = torch.zeros((), device=device)
            r_loss = torch.zeros((), device=device)
            if phase == "unlearn":
                f_loss = self.forget_loss(model, forget_stream.next().to(device))
            if retain_stream is not None and cfg.alpha > 0:
                r_loss = self.retain_loss(model, reference, retain_stream.next().to(device))
            loss = cfg.gamma * f_loss + cfg.alpha * r_loss if phase == "unlearn" else r_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            if start is not None and cfg.max_delta is not None:
                with torch.no_grad():
                    for p, p0 in zip(params, start):
                        p.copy_(p0 + (p - p0).clamp(-cfg.max_delta, cfg.max_delta))
            return StepInfo(step_no, total, float(loss.detach()), float(f_loss.detach()), float(r_loss.detach()), phase)

        model.train()
        steps_done, stopped, last = 0, False, float("nan")
        total = cfg.total_steps(len(forget))
        try:
            for i in range(1, total + 1):
                info = step("unlearn", i, total)
                steps_done, last = i, info.loss
                if on_step(info):
                    stopped = True
                    break
            if cfg.repair_steps and retain_stream is not None:
                for j in range(1, cfg.repair_steps + 1):
                    info = step("repair", steps_done + j, total + cfg.repair_steps)
                    last = info.loss
                    if on_step(info):
                        break
        finally:
            model.eval()
            for p in model.parameters():
                p.requires_grad_(True)
        return MethodRun(steps=steps_done, stopped_early=stopped, last_loss=last)
