"""Causal-LM plumbing shared by training, methods and evaluation: device, loading, log-likelihoods, greedy decoding."""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from unlearn_jobs.data import Batch, pad_id_of


def pick_device(name: str = "auto") -> torch.device:
    """CUDA when available (a GPU Ray worker), else CPU; the code path is the same."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


GENERATION_DTYPES = ("float32", "bfloat16")


def native_bf16(device: torch.device | str) -> bool:
    """Whether `device` computes bfloat16 natively (CUDA with bf16, a CPU with AVX512-BF16 or AMX):
    there bf16 generation is ~1.5-2x faster than float32 (measured on SmolLM2-135M, one EPYC core)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if dev.type != "cpu":
        return False
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return re.search(r"\b(?:avx512_bf16|amx_bf16)\b", cpuinfo) is not None


def generation_copy(model: Any, dtype: str) -> Any:
    """`model` itself when it is already in `dtype`, else an eval-mode copy cast to it (for generating
    answers only: training and likelihood scores keep the float32 weights)."""
    if dtype not in GENERATION_DTYPES:
        raise ValueError(f"generation dtype must be one of {GENERATION_DTYPES}, got {dtype!r}")
    target = getattr(torch, dtype)
    if next(model.parameters()).dtype == target:
        return model
    clone: Any = copy.deepcopy(model).to(target)
    clone.eval()
    return clone


def load_model(model_dir: str | Path, device: torch.device | str = "cpu") -> tuple[Any, Any]:
    """Model (float32: unlearning steps are small and bf16 rounding would swallow them) and tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a model directory (no config.json)")
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    # Any: transformers' annotations of `to` and `eval` (decorated methods) do not type-check.
    model: Any = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    model.to(device)
    model.eval()
    return model, tokenizer


def token_logprobs(model: Any, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of each label token and the mask of scored positions, both [B, T-1]."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    logits = logits[:, :-1, :].float()
    labels = batch.labels[:, 1:]
    mask = labels != -100
    safe = labels.clamp(min=0)
    lp = torch.gather(F.log_softmax(logits, dim=-1), 2, safe.unsqueeze(-1)).squeeze(-1)
    return lp * mask, mask


def mean_nll(model: Any, batch: Batch) -> torch.Tensor:
    """Mean negative log-likelihood over all target tokens in the batch."""
    lp, mask = token_logprobs(model, batch)
    return -lp.sum() / mask.sum().clamp(min=1)


def sequence_logprob(model: Any, batch: Batch) -> torch.Tensor:
    """Per-example total log-likelihood of the target, [B]."""
    lp, _ = token_logprobs(model, batch)
    return lp.sum(dim=1)


def kl_to_reference(model: Any, reference: Any, batch: Batch) -> torch.Tensor:
    """KL(reference ‖ model) over target positions: keeps the whole next-token distribution, not just the argmax."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1].float()
    with torch.no_grad():
        ref = reference(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1].float()
    mask = batch.labels[:, 1:] != -100
    ref_lp = F.log_softmax(ref, dim=-1)
    lp = F.log_softmax(logits, dim=-1)
    kl = (ref_lp.exp() * (ref_lp - lp)).sum(-1)
    return (kl * mask).sum() / mask.sum().clamp(min=1)


_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")

PARAM_GROUPS = {
    "all": None,
    "mlp": re.compile(r"\.mlp\."),
    "mlp_down": re.compile(r"\.mlp\.down_proj\."),
    "attn": re.compile(r"\.self_attn\."),
}


def num_layers(model: Any) -> int:
    layers = {int(m.group(1)) for n, _ in model.named_parameters() if (m := _LAYER.search(n))}
    return max(layers) + 1 if layers else 0


def resolve_layers(model: Any, layers: Sequence[int] | None) -> tuple[int, ...] | None:
    """Layer indices, negative ones counted from the top; None means every layer."""
    if layers is None:
        return None
    total = num_layers(model)
    out = []
    for i in layers:
        j = i + total if i < 0 else i
        if not 0 <= j < total:
            raise ValueError(f"layer {i} out of range for a {total}-layer model")
        out.append(j)
    return tuple(sorted(set(out)))


def select_trainable(model: Any, layers: Sequence[int] | None, params: str) -> list[torch.nn.Parameter]:
    """Freeze everything except `params` ("all" | "mlp" | "mlp_down" | "attn") in `layers`."""
    if params not in PARAM_GROUPS:
        raise ValueError(f"params must be one of {sorted(PARAM_GROUPS)}")
    chosen = resolve_layers(model, layers)
    pattern = PARAM_GROUPS[params]
    selected = []
    for name, p in model.named_parameters():
        m = _LAYER.search(name)
        if m is None:
            # Embeddings, final norm and head move only when the whole model does.
            ok = chosen is None and pattern is None
        else:
            ok = (chosen is None or int(m.group(1)) in chosen) and (pattern is None or bool(pattern.search(name)))
        p.requires_grad_(ok)
        if ok:
            selected.append(p)
    if not selected:
        raise ValueError(f"no parameters match layers={layers} params={params!r}")
    return selected


@torch.no_grad()
def greedy_generate(
    model: Any, tokenizer: Any, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, batch_size: int = 16
) -> list[str]:
    """Greedy continuations of pre-tokenised prompts, left-padded in batches of similar lengths (the
    answers come back in the prompts' order)."""
    device = next(model.parameters()).device
    pad = pad_id_of(tokenizer)
    was_training = model.training
    model.eval()
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    outputs: list[str] = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        chunk = [list(prompts[i]) for i in rows]
        width = max(len(p) for p in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, p in enumerate(chunk):
            ids[row, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[row, width - len(p) :] = 1
        gen = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad,
            eos_token_id=tokenizer.eos_token_id,
            temperature=None,
            top_p=None,
            top_k=None,
        )
        for i, row in zip(rows, gen[:, width:].tolist()):
            outputs[i] = tokenizer.decode(row, skip_special_tokens=True).strip()
    if was_training:
        model.train()
    return outputs
