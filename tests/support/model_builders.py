"""Test models built on the spot: a tiny random Llama that speaks through the SmolLM2 tokenizer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json")
TINY_MARKER = "lethe-model.json"


def build_tiny_llama(base_model: Path, out: Path, *, seed: int = 0, initializer_range: float = 0.02) -> Path:
    """A 2-layer, 128-wide Llama with the real tokenizer and chat template (~6.5M params).

    Random weights: it answers gibberish, fast, and deterministically in fp32 greedy mode, which is
    what tests of the serving path need. Built once per models dir (idempotent).
    """
    if (out / TINY_MARKER).is_file():
        return out
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    base_cfg = json.loads((base_model / "config.json").read_text())
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=base_cfg["vocab_size"],
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,  # head_dim 64: a size the CPU attention kernels support
        max_position_embeddings=2048,
        bos_token_id=base_cfg.get("bos_token_id"),
        eos_token_id=base_cfg.get("eos_token_id"),
        pad_token_id=base_cfg.get("pad_token_id"),
        tie_word_embeddings=True,
        rope_theta=10000.0,
        # Larger than the default 0.02 gives a random model whose answers depend on the prompt.
        initializer_range=initializer_range,
    )
    model = LlamaForCausalLM(cfg)
    staging = out.with_name(out.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.to(torch.float32).save_pretrained(str(staging), safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (base_model / name).is_file():
            shutil.copy(base_model / name, staging / name)
    marker = {"name": out.name, "version": f"{out.name}-seed{seed}"}
    (staging / TINY_MARKER).write_text(json.dumps(marker))
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return out


def build_embedding_variant(
    model_dir: Path, out: Path, token_ids: list[int], *, seed: int = 1, scale: float = 1.0
) -> Path:
    """A copy of `model_dir` whose embedding rows for `token_ids` get random noise: the same
    architecture (a valid swap target) that answers differently to prompts containing those tokens."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    generator = torch.Generator().manual_seed(seed)
    for f in model_dir.iterdir():
        if f.suffix == ".safetensors":
            tensors = load_file(str(f))
            if "model.embed_tokens.weight" in tensors:
                weight = tensors["model.embed_tokens.weight"].clone()
                for tid in token_ids:
                    noise = torch.randn(weight.shape[1], generator=generator, dtype=torch.float32)
                    weight[tid] += (noise * scale).to(weight.dtype)
                tensors["model.embed_tokens.weight"] = weight
            save_file(tensors, str(out / f.name), metadata={"format": "pt"})
        elif f.is_file() and f.name != TINY_MARKER:
            shutil.copy(f, out / f.name)
    return out


def build_reshaped_copy(model_dir: Path, out: Path) -> Path:
    """A copy with one tensor's shape changed (a version that must never be loaded)."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for f in model_dir.iterdir():
        if f.suffix == ".safetensors":
            tensors = load_file(str(f))
            tensors["model.norm.weight"] = torch.ones(tensors["model.norm.weight"].shape[0] // 2)
            save_file(tensors, str(out / f.name), metadata={"format": "pt"})
        elif f.is_file() and f.name != TINY_MARKER:
            shutil.copy(f, out / f.name)
    return out
