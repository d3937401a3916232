"""`ModelAsker`: the views' questions put to a transformers causal LM (greedy, sampled, option likelihoods)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from unlearn_jobs.data import PromptFormat, encode_pair, pad_id_of
from unlearn_jobs.views.base import ModelTransform, ViewProbe


class ModelAsker:
    """Asks a model the views' probes in its prompt format; one batch at a time.

    >>> asker = ModelAsker(model, tokenizer, PromptFormat("plain"), max_new_tokens=24)
    >>> asker.generate(probes), asker.option_scores(choice_probes)
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        fmt: PromptFormat,
        *,
        max_new_tokens: int = 32,
        batch_size: int = 16,
        generation_dtype: str = "float32",
        generator: Any = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.fmt = fmt.resolve(tokenizer)
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.generation_dtype = generation_dtype
        # What answers (generates, scores options): `model` cast to `generation_dtype` (made on first
        # use unless given).
        self._generator = generator

    @property
    def generator(self) -> Any:
        if self._generator is None:
            from unlearn_jobs.model import generation_copy

            self._generator = generation_copy(self.model, self.generation_dtype)
        return self._generator

    def _ids(self, probe: ViewProbe) -> list[int]:
        return self.fmt.prompt_ids(self.tokenizer, probe.prompt, "qa")

    def generate(self, probes: Sequence[ViewProbe]) -> list[str]:
        from unlearn_jobs.model import greedy_generate

        return greedy_generate(
            self.generator,
            self.tokenizer,
            [self._ids(p) for p in probes],
            max_new_tokens=self.max_new_tokens,
            batch_size=self.batch_size,
        )

    def sample(self, probes: Sequence[ViewProbe], n: int, temperature: float, seed: int) -> list[list[str]]:
        import torch

        from unlearn_jobs.model import left_pad

        model = self.generator
        device = next(model.parameters()).device
        pad = pad_id_of(self.tokenizer)
        # Seeded once per call: the same model, probes and seed give the same samples (CPU or CUDA).
        torch.manual_seed(seed)
        out: list[list[str]] = []
        per_batch = max(1, self.batch_size // max(1, n))
        model.eval()
        with torch.no_grad():
            for start in range(0, len(probes), per_batch):
                chunk = [self._ids(p) for p in probes[start : start + per_batch]]
                ids, mask = left_pad(chunk, pad)
                width = ids.shape[1]
                gen = model.generate(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    max_new_tokens=self.max_new_tokens,
                    do_sample=True,
                    temperature=temperature,
                    top_k=0,
                    top_p=1.0,
                    num_return_sequences=n,
                    pad_token_id=pad,
                    eos_token_id=self.tokenizer.eos_token_id,
                )
                texts = [self.tokenizer.decode(r, skip_special_tokens=True).strip() for r in gen[:, width:].tolist()]
                out.extend(texts[i * n : (i + 1) * n] for i in range(len(chunk)))
        return out

    def option_scores(self, probes: Sequence[ViewProbe]) -> list[list[float]]:
        """Per probe, each option's mean log-likelihood per token as the answer (its eos included: a
        name scores as a whole answer), scored by the copy that generates (the evaluation's dtype, as
        the serving engine computes). In bfloat16 on the benchmark's subjects and anchors (seeds 4, 5)
        the best option was float32's on 80 of 80 multiple-choice and 156 of 160 yes/no probes (the 4:
        near-ties of models at chance), at 3.4x less time (10.3 -> 3.0 s per evaluation)."""
        from unlearn_jobs.model import continuation_logprobs

        prompts, options = [], []
        for p in probes:
            # Encoded as training encodes an answer (`encode_pair`: eos added, 512 tokens at most, the
            # prompt's end kept); the options share the prompt left by the longest one.
            pairs = [
                encode_pair(self.tokenizer, self._ids(p), self.fmt.target_text(self.tokenizer, o), 512)
                for o in p.options
            ]
            answer = [e.labels != -100 for e in pairs]
            options.append([e.input_ids[a].tolist() for e, a in zip(pairs, answer)])
            shortest = min(range(len(pairs)), key=lambda k: int((~answer[k]).sum()))
            prompts.append(pairs[shortest].input_ids[~answer[shortest]].tolist())
        scorer = self.generator
        scorer.eval()
        return continuation_logprobs(scorer, prompts, options, self.batch_size)

    def derive(self, transform: ModelTransform) -> ModelAsker:
        model = copy.deepcopy(self.model)
        transform(model, self.tokenizer, self.fmt)
        model.eval()
        return ModelAsker(
            model,
            self.tokenizer,
            self.fmt,
            max_new_tokens=self.max_new_tokens,
            batch_size=self.batch_size,
            generation_dtype=self.generation_dtype,
        )
