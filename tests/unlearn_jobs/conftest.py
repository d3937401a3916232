"""Shared fixtures: a word-level tokenizer and a tiny Llama trained once per session to memorise fictitious facts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from unlearn_jobs.data import (
    REFUSAL_TARGET,
    Example,
    ExampleSet,
    PromptFormat,
    examples_from_facts,
    load_fluency,
    split_text,
)
from unlearn_jobs.facts import FactSet, generate_fact_set

PEOPLE = 8
FACTS_PER_PERSON = 3
FORGET_PEOPLE = 2


def build_tokenizer(facts: FactSet, extra: tuple[str, ...] = ()):
    """A word-level tokenizer trained on the facts themselves: no hub, no downloads."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = ["Question: Answer:", REFUSAL_TARGET, *extra]
    for f in facts.facts:
        corpus += [f.question, f.answer, *f.paraphrases]
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "[EOS]"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]")


def build_tiny_llama(vocab_size: int, *, layers: int = 4, hidden: int = 64, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=128,
        tie_word_embeddings=False,
        pad_token_id=0,
        eos_token_id=2,
        bos_token_id=None,
    )
    return LlamaForCausalLM(cfg).eval()


@dataclass(frozen=True)
class Subject:
    """The trained tiny subject model on disk and the sets it was trained on."""

    model_dir: Path
    facts: FactSet
    forget: ExampleSet
    retain: ExampleSet
    fmt: PromptFormat


def train_subject(out_dir: Path, *, epochs: int = 120) -> Subject:
    from unlearn_jobs.finetune import FinetuneConfig, finetune

    facts = generate_fact_set(PEOPLE, FACTS_PER_PERSON, seed=7)
    forget_facts, retain_facts = facts.split(FORGET_PEOPLE)
    tokenizer = build_tokenizer(facts, load_fluency())
    model = build_tiny_llama(len(tokenizer))
    fmt = PromptFormat("plain")
    # General text too, so fluency perplexity measures a real language model, not noise.
    texts = ExampleSet(
        tuple(Example(f"text/{i}", "text", *split_text(t), (), style="text") for i, t in enumerate(load_fluency()))
    )
    finetune(
        model,
        tokenizer,
        examples_from_facts(facts.facts).concat(texts),
        FinetuneConfig(
            lr=3e-3, epochs=epochs, batch_size=16, warmup_steps=20, target_hit_rate=1.0, check_every_epochs=20
        ),
        fmt=fmt,
    )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return Subject(
        out_dir, facts, examples_from_facts(forget_facts.facts), examples_from_facts(retain_facts.facts), fmt
    )


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    # Other engineers' suites share these 2 cores.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def subject(tmp_path_factory) -> Subject:
    return train_subject(tmp_path_factory.mktemp("subject") / "model")
