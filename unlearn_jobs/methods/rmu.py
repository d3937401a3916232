"""RMU: scramble one layer's activations on forget tokens toward a fixed random vector, keep them on retain tokens."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from unlearn_jobs.data import Batch, EncodedExample, collate, encode_examples
from unlearn_jobs.methods.base import MethodRun, StepCallback, UnlearnData, register
from unlearn_jobs.methods.gradient import GradientConfig, GradientMethod
from unlearn_jobs.model import native_bf16, num_layers, resolve_layers

# What `RMUConfig.fast_dtype` may name: "auto" = bfloat16 where the device computes it natively.
FAST_DTYPES = ("auto", "bfloat16", "float32")


class _Reached(Exception):
    """Carries layer ℓ's output out of the decoder's forward, which then stops."""

    def __init__(self, hidden: torch.Tensor) -> None:
        super().__init__("steered layer reached")
        self.hidden = hidden


def steered_activations(
    model: Any, batch: Batch, layer: int, start: tuple[int, torch.Tensor] | None = None
) -> torch.Tensor:
    """Decoder layer `layer`'s output (what `output_hidden_states` lists at `layer + 1`), running only the
    layers up to it: a hook on that layer ends the forward there, with the autograd graph intact.

    `start` = (first, hidden): `hidden` [B, T, H] is layer `first`'s input (computed once, the layers
    below it frozen), so only layers first..layer run. On SmolLM2-135M rmu steers layer 7 of 30: each
    step ran 30 layers to read the 8th; in the benchmark's top-6-layer setting it ran 29 to update 5.
    """
    decoder = model.get_decoder()
    blocks = getattr(decoder, "layers", None)
    if blocks is None or not 0 <= layer < len(blocks):
        # A decoder without a `layers` list: run it whole and read the recorded states.
        out = decoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True)
        hidden: torch.Tensor = out.hidden_states[layer + 1]
        return hidden

    def stop(module: Any, args: Any, output: Any) -> None:
        raise _Reached(output[0] if isinstance(output, tuple) else output)

    handles = [blocks[layer].register_forward_hook(stop)]
    first = 0
    if start is not None:
        first, given = start

        def substitute(module: Any, args: Any, kwargs: Any) -> tuple[Any, Any]:
            if args:
                return (given, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": given}

        handles.append(blocks[first].register_forward_pre_hook(substitute, with_kwargs=True))
        # The layers below `first` are skipped: the decoder iterates its list, so it gets the tail.
        decoder.layers = torch.nn.ModuleList(list(blocks)[first:])
    try:
        decoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
    except _Reached as reached:
        return reached.hidden
    finally:
        decoder.layers = blocks
        for handle in handles:
            handle.remove()
    raise RuntimeError(f"rmu: the decoder returned without running layer {layer}")


def _has_dropout(model: Any, below: int) -> bool:
    """Whether the layers below `below` drop out at random in training mode (then their outputs are not
    the same at every step and may not be cached)."""
    if float(getattr(model.config, "attention_dropout", 0.0) or 0.0) > 0:
        return True
    blocks = getattr(model.get_decoder(), "layers", None)
    if blocks is None:
        return True
    return any(isinstance(m, torch.nn.Dropout) and m.p > 0 for block in list(blocks)[:below] for m in block.modules())


@dataclass(frozen=True)
class RMUConfig(GradientConfig):
    # Defaults picked on SmolLM2-135M with the leakage views (issue 17's tuning split: 20 people x 3
    # facts, seed 0; BENCHMARKS.md): stopping as soon as greedy answers are gone (lr 3e-4, step 20)
    # left facts for best-of-8, int4 and relearning to find; 20 unstopped steps at 6e-4 left none on
    # any view at 0.98 of the retain facts. So rmu runs its budget: no early stop. Those 20 steps (batch
    # 4) were 13 passes over the 6 forget prompts; at 40 x 5 (20 prompts) 20 steps (4 passes) left 20%
    # of the facts and 60 (12 passes) none on any view: the budget is at least 12 passes.
    lr: float = 6e-4
    steps: int = 20
    min_passes: float = 12.0
    early_stop: bool = False
    # The decoder layer ℓ whose output is steered (negative counts from the top); None = a quarter of
    # the way up (the paper's 7 of 32). Updated weights: `layers` (None = ℓ-2..ℓ), `params` inside them.
    layer: int | None = None
    params: str = "mlp"
    # c = steer × the parent's mean activation norm at ℓ on forget tokens. Relative, so one default fits
    # models whose activation norms differ by orders of magnitude (the paper's absolute c=6.5 does not).
    # 4: the smallest that forgot in 16 steps on SmolLM2-135M (2 had not; 8 forgot at the same retain).
    steer: float = 4.0
    # Both MSE terms are divided by the parent's mean squared activation at ℓ, so `alpha` (retain
    # weight) is in the same units for every model; the paper's alpha=1200 is for raw MSE. At 10,
    # SmolLM2-135M kept 8% of its retain facts after 10 steps at lr 1e-3; at 100, 98%.
    alpha: float = 100.0
    # Which forget positions are steered: "answer" (those that predict an answer token) or "all"
    # (prompt too, as the paper does on documents). A chat prompt opens with the template and system
    # prompt every question shares, so steering it fights the retain term on the same activations.
    forget_tokens: str = "answer"
    # Every forward of the job (the frozen layers' outputs, computed once; the parent's retain activations;
    # both loss terms) runs under autocast in this dtype; the weights, their gradients and the optimizer
    # stay float32. "auto": bfloat16 where the device computes it natively (unlearn_jobs.model.native_bf16),
    # else float32. On one EPYC core (benchmark setting, seed 4) the run went 58 -> 26 s with the same
    # retain answers and no leak on any gated view. The parent's retain activations must be computed the
    # way the retain term computes the candidate's: bf16 losses against float32 targets lost 3 of 80
    # retain answers (the targets' rounding is a floor the retain term keeps pushing against).
    fast_dtype: str = "auto"

    def validate(self) -> None:
        super().validate()
        if self.fast_dtype not in FAST_DTYPES:
            raise ValueError(f"fast_dtype must be one of {FAST_DTYPES}, got {self.fast_dtype!r}")
        if not (self.steer > 0 and self.steer <= 1000):
            raise ValueError("steer must be in (0, 1000]")
        if self.forget_tokens not in ("all", "answer"):
            raise ValueError('forget_tokens must be "all" or "answer"')
        if self.retain_loss != "nll":
            raise ValueError('rmu keeps retain activations, not outputs: retain_loss "kl" does not apply')


@register
class RMU(GradientMethod):
    """forget: ‖h_ℓ − c·u‖², retain: α·‖h_ℓ − h_ℓ^parent‖² (Li et al. 2024, "The WMDP Benchmark").

    Later layers read noise where the forgotten facts were, so the model answers gibberish about
    them rather than a plausible wrong answer. The parent's retain activations are computed once
    before the first step (the retain set is fixed), so no frozen copy of the model is kept.

    >>> get_method("rmu").from_overrides({"layer": 7, "steer": 4}).run(model, tok, data, device=d, on_step=cb)
    """

    name = "rmu"
    config_cls = RMUConfig
    config: RMUConfig

    def __init__(self, config: RMUConfig | None = None) -> None:
        super().__init__(config)
        self._layer = 0
        self._retain_items: list[EncodedExample] = []
        self._retain_acts: list[torch.Tensor] = []
        self._target: torch.Tensor | None = None
        self._energy = 1.0
        self._first = 0  # the lowest updated layer, when the layers below it are skipped
        self._forget_in: list[torch.Tensor] | None = None
        self._retain_in: list[torch.Tensor] | None = None
        self._fast: torch.dtype | None = None  # the autocast dtype of the job's forwards

    def needs_reference(self) -> bool:
        return False

    def steered_layer(self, model: Any) -> int:
        total = num_layers(model)
        chosen = self.config.layer
        layer = total // 4 if chosen is None else (chosen + total if chosen < 0 else chosen)
        # The decoder reports the top layer's output after the final norm, which is not that layer's activation.
        if not 0 <= layer < total - 1:
            raise ValueError(f"rmu layer {chosen} out of range: a {total}-layer model allows 0..{total - 2}")
        return layer

    def default_layers(self, model: Any) -> tuple[int, ...] | None:
        layer = self.steered_layer(model)
        return tuple(range(max(0, layer - 2), layer + 1))

    def forget_items(self, tokenizer: Any, data: UnlearnData) -> list[EncodedExample]:
        # Encoded exactly as the shared loop encodes its retain stream, so batch indices line up.
        cfg = self.config
        self._retain_items = (
            encode_examples(tokenizer, data.retain, data.fmt, cfg.max_length) if len(data.retain) else []
        )
        return super().forget_items(tokenizer, data)

    def _hidden(self, model: Any, batch: Batch, inputs: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Layer ℓ's output; the decoder stops there (the layers above it never run: both losses read ℓ).
        `inputs`: the cached input of the lowest updated layer per item (by index): the frozen layers
        below it are skipped."""
        start = None
        if inputs is not None and self._first > 0:
            given = torch.zeros((*batch.input_ids.shape, inputs[0].shape[-1]), dtype=inputs[0].dtype)
            for row, index in enumerate(batch.indices.tolist()):
                cached = inputs[index]
                given[row, : cached.shape[0]] = cached
            start = (self._first, given.to(batch.input_ids.device))
        return steered_activations(model, batch, self._layer, start).float()

    @staticmethod
    def _per_item(
        items: list[EncodedExample], device: Any, compute: Callable[[Batch], torch.Tensor]
    ) -> list[torch.Tensor]:
        """`compute`'s [B, T, H] output for each item, trimmed to its tokens, on the CPU, by item index."""
        out = [torch.empty(0)] * len(items)
        by_length = sorted(items, key=lambda item: int(item.input_ids.numel()))  # little padding per chunk
        for start in range(0, len(by_length), 32):
            chunk = by_length[start : start + 32]
            h = compute(collate(chunk, 0).to(device)).cpu()
            for row, item in enumerate(chunk):
                out[item.index] = h[row, : int(item.input_ids.numel())].clone()
        return out

    def fast_dtype(self, device: Any) -> torch.dtype | None:
        """The autocast dtype of the job's forwards on `device` (None: float32)."""
        name = self.config.fast_dtype
        if name == "float32" or (name == "auto" and not native_bf16(device)):
            return None
        return torch.bfloat16

    @contextlib.contextmanager
    def _fast_math(self, device: Any) -> Iterator[None]:
        if self._fast is None:
            yield
            return
        with torch.autocast(device_type=torch.device(device).type, dtype=self._fast):
            yield

    def _forget_mask(self, batch: Batch) -> torch.Tensor:
        if self.config.forget_tokens == "all":
            return batch.attention_mask.bool()
        mask = torch.zeros_like(batch.attention_mask, dtype=torch.bool)
        mask[:, :-1] = batch.labels[:, 1:] != -100
        return mask

    def prepare(self, model: Any, reference: Any | None, forget: list[EncodedExample], device: Any) -> None:
        self._layer = self.steered_layer(model)
        self._fast = self.fast_dtype(device)
        chosen = self.config.layers if self.config.layers is not None else self.default_layers(model)
        updated = resolve_layers(model, chosen)
        if updated is not None and min(updated) > self._layer:
            # The steered activations would not depend on any weight the job may change.
            raise ValueError(
                f"rmu steers layer {self._layer} but updates only layers {list(updated)}: set `layer` to one "
                f"of the updated layers or above them (below the top), or update layers up to {self._layer}"
            )
        # Below the lowest updated layer nothing changes during the job: its input for each forget and
        # retain prompt is computed once and every step runs only the layers from there up to ℓ (on
        # the benchmark's setting, 5 of 29). Not where the frozen layers would drop out at random.
        self._first = min(updated) if updated is not None and not _has_dropout(model, min(updated)) else 0
        was = model.training
        model.eval()
        sq_sum, norm_sum, count, width = 0.0, 0.0, 0, 1
        with torch.no_grad():
            if self._first > 0:
                # What the frozen layers output: layer `_first`'s input.
                below = self._first - 1

                def frozen(b: Batch) -> torch.Tensor:
                    # Stored in float32, whatever computed them (`_hidden` feeds them to the first
                    # updated layer as they are).
                    with self._fast_math(device):
                        return steered_activations(model, b, below).float()

                self._forget_in = self._per_item(forget, device, frozen)
                self._retain_in = self._per_item(self._retain_items, device, frozen)
            for start in range(0, len(forget), 16):
                batch = collate(forget[start : start + 16], 0).to(device)
                with self._fast_math(device):
                    h = self._hidden(model, batch, self._forget_in)[self._forget_mask(batch)]
                sq_sum += float((h * h).sum())
                norm_sum += float(h.norm(dim=-1).sum())
                count, width = count + h.shape[0], h.shape[-1]

            def parent(b: Batch) -> torch.Tensor:
                # Exactly as `retain_loss` computes the candidate's (same dtype, same cached inputs): the
                # retain term starts at 0, not at the rounding between two precisions.
                with self._fast_math(device):
                    return self._hidden(model, b, self._retain_in)

            self._retain_acts = self._per_item(self._retain_items, device, parent)
        model.train(was)
        if count == 0:
            raise ValueError("rmu: the forget set has no tokens to steer")
        self._energy = max(sq_sum / (count * width), 1e-12)
        g = torch.Generator().manual_seed(self.config.seed)
        u = torch.rand(width, generator=g)
        self._target = (self.config.steer * norm_sum / count * u / u.norm()).to(device)

    def forget_loss(self, model: Any, batch: Batch) -> torch.Tensor:
        if self._target is None:
            raise RuntimeError("RMU.prepare was not called")
        with self._fast_math(batch.input_ids.device):
            h = self._hidden(model, batch, self._forget_in)  # float32 (`_hidden` casts) for the loss
        mask = self._forget_mask(batch).unsqueeze(-1).to(h.dtype)
        sq = ((h - self._target) ** 2 * mask).sum()
        return sq / (mask.sum() * h.shape[-1]).clamp(min=1) / self._energy

    def retain_loss(self, model: Any, reference: Any | None, batch: Batch) -> torch.Tensor:
        with self._fast_math(batch.input_ids.device):
            h = self._hidden(model, batch, self._retain_in)
        parent = torch.zeros_like(h)
        lengths = batch.attention_mask.sum(dim=1).tolist()
        for row, index in enumerate(batch.indices.tolist()):
            act = self._retain_acts[index]
            if act.shape[0] != lengths[row]:
                raise RuntimeError("rmu: retain batch does not line up with the cached retain activations")
            parent[row, : act.shape[0]] = act.to(h.device)
        mask = batch.attention_mask.unsqueeze(-1).to(h.dtype)
        sq = ((h - parent) ** 2 * mask).sum()
        return sq / (mask.sum() * h.shape[-1]).clamp(min=1) / self._energy

    def run(self, model: Any, tokenizer: Any, data: UnlearnData, *, device: Any, on_step: StepCallback) -> MethodRun:
        try:
            return super().run(model, tokenizer, data, device=device, on_step=on_step)
        finally:
            # The caches are the size of the retain set's activations: drop them with the job.
            self._retain_items, self._retain_acts, self._target = [], [], None
            self._forget_in = self._retain_in = None
