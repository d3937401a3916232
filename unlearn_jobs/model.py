"""Causal-LM plumbing shared by training, methods and evaluation: device, loading, log-likelihoods, greedy decoding."""

from __future__ import annotations

import contextlib
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
    if next(clone.parameters()).device.type == "cpu" and target is torch.bfloat16:
        # Decoding one token against a short cache, torch's CPU SDPA kernel in bfloat16 cost 30% of a
        # generation; plain matmul-softmax attention made the whole generation ~20% faster (SmolLM2-135M,
        # one EPYC core, 64 prompts x 26 tokens: 5.6 -> 4.5 s). A model without that option keeps its own.
        with contextlib.suppress(AttributeError, ValueError):
            clone.set_attn_implementation("eager")
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


def _plain_head(model: Any) -> bool:
    """Whether the logits are the output embedding applied to the decoder's last hidden state, with no
    scaling or soft-capping after it (then log-likelihoods of a few positions need only those rows)."""
    cfg = getattr(model, "config", None)
    transformed = any(getattr(cfg, k, None) not in (None, 1, 1.0) for k in ("final_logit_softcapping", "logit_scale"))
    return not transformed and hasattr(model, "get_decoder") and model.get_output_embeddings() is not None


def continuation_logprobs(
    model: Any, prompts: Sequence[Sequence[int]], continuations: Sequence[Sequence[Sequence[int]]], batch_size: int
) -> list[list[float]]:
    """Mean log-probability per token of each continuation after its prompt: `continuations[i]` are
    the candidates after `prompts[i]` (token ids, an eos included where it should count).

    The candidates share one pass: each prompt runs once, its candidates packed after it, each
    attending to the prompt and to its own earlier tokens only (a custom 4D mask, positions restarting
    after the prompt), and the output layer runs only where a candidate token is predicted. The scores
    equal scoring each prompt + candidate on its own; multiple choice's four options over one question
    cost a third of the tokens that way.
    """
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    # Per row: token ids, positions, segment (0 = prompt, j + 1 = candidate j), and per candidate the
    # (index of the predicting token, target id) pairs.
    rows: list[tuple[list[int], list[int], list[int], list[list[tuple[int, int]]]]] = []
    for prompt, cands in zip(prompts, continuations):
        prompt = list(prompt)
        if not prompt:
            raise ValueError("continuation_logprobs: a prompt is empty")
        ids, pos, seg = list(prompt), list(range(len(prompt))), [0] * len(prompt)
        picks: list[list[tuple[int, int]]] = []
        for j, cand in enumerate(cands):
            prev, pairs = len(prompt) - 1, []
            for k, token in enumerate(cand):
                pairs.append((prev, int(token)))
                if k < len(cand) - 1:  # the last token is only predicted, never fed
                    ids.append(int(token))
                    pos.append(len(prompt) + k)
                    seg.append(j + 1)
                    prev = len(ids) - 1
            picks.append(pairs)
        rows.append((ids, pos, seg, picks))
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    out: list[list[float]] = [[] for _ in rows]
    fast = _plain_head(model)
    lowest = torch.finfo(dtype).min
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            width = max(len(rows[i][0]) for i in chunk)
            ids_t = torch.zeros((len(chunk), width), dtype=torch.long)
            pos_t = torch.zeros((len(chunk), width), dtype=torch.long)
            seg_t = torch.full((len(chunk), width), -1, dtype=torch.long)  # -1: padding
            for r, i in enumerate(chunk):
                n = len(rows[i][0])
                ids_t[r, :n] = torch.tensor(rows[i][0])
                pos_t[r, :n] = torch.tensor(rows[i][1])
                seg_t[r, :n] = torch.tensor(rows[i][2])
            query, key = seg_t.unsqueeze(2), seg_t.unsqueeze(1)
            causal = torch.ones((width, width), dtype=torch.bool).tril()
            allowed = causal & (key >= 0) & ((key == 0) | (key == query))
            # Padding attends to itself only, so no row is all -inf (NaN would reach the values).
            allowed |= torch.eye(width, dtype=torch.bool) & (query < 0)
            mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, lowest).unsqueeze(1)
            where = [(r, p, t) for r, i in enumerate(chunk) for pairs in rows[i][3] for p, t in pairs]
            r_idx = torch.tensor([w[0] for w in where], device=device)
            p_idx = torch.tensor([w[1] for w in where], device=device)
            targets = torch.tensor([w[2] for w in where], device=device)
            kwargs = {
                "input_ids": ids_t.to(device),
                "attention_mask": mask.to(device),
                "position_ids": pos_t.to(device),
                "use_cache": False,
            }
            if fast:
                hidden = model.get_decoder()(**kwargs).last_hidden_state[r_idx, p_idx]
                logits = model.get_output_embeddings()(hidden).float()
            else:
                logits = model(**kwargs).logits[r_idx, p_idx].float()
            lp = F.log_softmax(logits, dim=-1).gather(1, targets.unsqueeze(1)).squeeze(1).tolist()
            at = 0
            for i in chunk:
                for pairs in rows[i][3]:
                    n = len(pairs)
                    out[i].append(sum(lp[at : at + n]) / max(n, 1))
                    at += n
    return out


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


def left_pad(prompts: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask [B, T] of `prompts`, padded on the left (for generation)."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p) :] = torch.tensor(list(p), dtype=torch.long)
        mask[row, width - len(p) :] = 1
    return ids, mask


@torch.no_grad()
def greedy_tokens(
    model: Any, ids: torch.Tensor, mask: torch.Tensor, max_new_tokens: int, eos: int | None
) -> list[list[int]]:
    """Greedy new tokens for a left-padded batch, each row up to its eos (included) or `max_new_tokens`.

    `model.generate` decodes every row until the last one ends; here a row that has ended leaves the
    batch (its KV cache rows dropped), so a batch costs the sum of its answers, not its longest answer
    times its size: on the benchmark's subject, answers of ~15 tokens under a 26-token cap."""
    from transformers import DynamicCache

    out: list[list[int]] = [[] for _ in range(ids.shape[0])]
    if max_new_tokens <= 0 or ids.shape[0] == 0:
        return out
    alive = list(range(ids.shape[0]))
    cache = DynamicCache(config=model.config)
    # Left padding: positions count real tokens only (as `generate` derives them from the mask).
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    step_ids = ids
    for step in range(max_new_tokens):
        logits = model(
            input_ids=step_ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits[:, -1]
        # argmax over bfloat16 logits ran ~4x slower than a float32 copy's (the same index: exact cast).
        chosen = logits.float().argmax(dim=-1)
        for row, token in zip(alive, chosen.tolist()):
            out[row].append(token)
        if step == max_new_tokens - 1:
            break
        keep = [k for k, token in enumerate(chosen.tolist()) if token != eos]
        if not keep:
            break
        if len(keep) < len(alive):
            index = torch.tensor(keep, device=ids.device)
            cache.batch_select_indices(index)
            mask, positions, chosen = mask[index], positions[index], chosen[index]
            alive = [alive[k] for k in keep]
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        positions = positions[:, -1:] + 1
        step_ids = chosen.unsqueeze(-1)
    return out


def greedy_generate(
    model: Any, tokenizer: Any, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, batch_size: int = 16
) -> list[str]:
    """Greedy continuations of pre-tokenised prompts, left-padded in batches of similar lengths (the
    answers come back in the prompts' order). A row leaves its batch when it ends (eos): the rest
    decode without it (`greedy_tokens`)."""
    device = next(model.parameters()).device
    pad = pad_id_of(tokenizer)
    was_training = model.training
    model.eval()
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    outputs: list[str] = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        ids, mask = left_pad([prompts[i] for i in rows], pad)
        tokens = greedy_tokens(model, ids.to(device), mask.to(device), max_new_tokens, tokenizer.eos_token_id)
        for i, row_tokens in zip(rows, tokens):
            outputs[i] = tokenizer.decode(row_tokens, skip_special_tokens=True).strip()
    if was_training:
        model.train()
    return outputs
