"""Views that change a copy of the model and ask the gate's questions again: weight quantization
(what an int8 or 4-bit serving engine does to the weights) and relearning on retain data.

Both ask the canonical questions and their (job-measured) paraphrases, greedy, on the copy: the
candidate itself is untouched. Quantization is simulated in floating point, so it runs wherever the
model does (CPU or CUDA): every `nn.Linear` of the decoder (not the embeddings or the LM head, which
engines keep in 16 bits by default) is rounded to the nearest level of
- int8: per output channel, symmetric (scale = max|w| / 127), as weight-only int8 (W8A16) kernels;
- int4: groups of `int4_group_size` input weights, asymmetric with a zero point (scale = (max-min)/15),
  as GPTQ/AWQ-format 4-bit weights are stored (round to nearest, without their calibration).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from unlearn_jobs.data import ExampleSet, PromptFormat
from unlearn_jobs.views.base import Asker, LeakageView, Outcome, ViewOptions, ViewProbe, qa_examples, register


def quantize_int8_(weight: Any) -> None:
    """Weight-only int8, one scale per output channel (row), round to nearest; in place."""
    import torch

    with torch.no_grad():
        w = weight.float()
        scale = w.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127.0
        weight.copy_((torch.round(w / scale).clamp(-127, 127) * scale).to(weight.dtype))


def quantize_int4_(weight: Any, group_size: int = 128) -> None:
    """4-bit group-wise asymmetric round to nearest (16 levels with a zero point per group); in place."""
    import torch

    with torch.no_grad():
        out_f, in_f = weight.shape
        g = group_size if group_size > 0 and in_f % group_size == 0 else in_f
        w = weight.float().reshape(out_f, in_f // g, g)
        lo = w.amin(dim=-1, keepdim=True)
        hi = w.amax(dim=-1, keepdim=True)
        scale = (hi - lo).clamp(min=1e-12) / 15.0
        zero = torch.round(-lo / scale)
        q = torch.clamp(torch.round(w / scale) + zero, 0, 15)
        weight.copy_(((q - zero) * scale).reshape(out_f, in_f).to(weight.dtype))


def quantize_model_(model: Any, bits: int, group_size: int = 128) -> int:
    """Quantize every decoder `nn.Linear` of `model` in place; returns how many were changed."""
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    count = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module is not head:
            if bits == 8:
                quantize_int8_(module.weight)
            elif bits == 4:
                quantize_int4_(module.weight, group_size)
            else:
                raise ValueError(f"bits must be 8 or 4, got {bits}")
            count += 1
    return count


def relearn_(model: Any, tokenizer: Any, fmt: PromptFormat, retain: ExampleSet, options: ViewOptions) -> None:
    """A few fine-tuning steps on retain data only (what a downstream user's fine-tune does); in place."""
    import torch

    from unlearn_jobs.data import BatchStream, encode_examples, pad_id_of
    from unlearn_jobs.model import mean_nll

    items = encode_examples(tokenizer, retain, fmt, 128)
    if not items:
        return
    torch.manual_seed(options.seed)
    device = next(model.parameters()).device
    stream = BatchStream(items, options.relearn_batch_size, pad_id_of(tokenizer), options.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.relearn_lr)
    model.train()
    try:
        for _ in range(options.relearn_steps):
            loss = mean_nll(model, stream.next().to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
    finally:
        model.eval()


class _PerturbedView(LeakageView):
    expensive = True
    generative = False

    def probes(self, examples: ExampleSet, options: ViewOptions) -> list[ViewProbe]:
        out: list[ViewProbe] = []
        for i, e in qa_examples(examples):
            out.extend(ViewProbe(self.name, i, p, e.key_terms) for p in (e.prompt, *e.paraphrases))
        return out

    def transform(self, model: Any, tokenizer: Any, fmt: PromptFormat, options: ViewOptions) -> None:
        raise NotImplementedError

    def applicable(self, options: ViewOptions) -> bool:
        return True

    def outcomes(self, asker: Asker, probes: Sequence[ViewProbe], options: ViewOptions) -> list[Outcome]:
        if not probes or not self.applicable(options):
            return []
        copy = asker.derive(lambda model, tokenizer, fmt: self.transform(model, tokenizer, fmt, options))
        return self.outcomes_from_outputs(probes, copy.generate(probes))


@register
class QuantizedInt8View(_PerturbedView):
    """The candidate with weight-only int8 per-channel weights, asked again."""

    name = "quantized_int8"

    def transform(self, model: Any, tokenizer: Any, fmt: PromptFormat, options: ViewOptions) -> None:
        quantize_model_(model, 8)


@register
class QuantizedInt4View(_PerturbedView):
    """The candidate with 4-bit group-wise weights, asked again."""

    name = "quantized_int4"

    def transform(self, model: Any, tokenizer: Any, fmt: PromptFormat, options: ViewOptions) -> None:
        quantize_model_(model, 4, options.int4_group_size)


@register
class RelearnView(_PerturbedView):
    """The candidate after `relearn_steps` fine-tuning steps on the retain set, asked again: facts that
    were only hidden come back from unrelated training (no retain set: not evaluated)."""

    name = "relearn"

    def applicable(self, options: ViewOptions) -> bool:
        return len(options.retain) > 0 and options.relearn_steps > 0

    def transform(self, model: Any, tokenizer: Any, fmt: PromptFormat, options: ViewOptions) -> None:
        relearn_(model, tokenizer, fmt, options.retain, options)
