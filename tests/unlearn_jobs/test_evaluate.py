"""Leakage metrics and gates, without a model."""

from __future__ import annotations

import pytest

from unlearn_jobs.evaluate import Gates, Metrics, ProbeScores, SetScores, key_term_hit, rouge_l_recall


def _metrics(forget_q: float, forget_p: float, retain: float, ppl: float) -> Metrics:
    return Metrics(
        SetScores(ProbeScores(4, 0.5, forget_q), ProbeScores(12, 0.5, forget_p)),
        SetScores(ProbeScores(10, 0.9, retain), ProbeScores(30, 0.9, retain)),
        ppl,
    )


def test_key_terms_need_all_terms_and_rouge_is_recall():
    assert key_term_hit("born in Quillmarsh in 1974", ["Quillmarsh", "1974"])
    assert not key_term_hit("born in Quillmarsh", ["Quillmarsh", "1974"])
    assert not key_term_hit("anything", [])
    assert rouge_l_recall("Ana was born in Quillmarsh . Extra words", "Ana was born in Quillmarsh.") == 1.0
    assert rouge_l_recall("I don't know.", "Ana was born in Quillmarsh.") == 0.0


def test_gates_pass_and_fail_with_reasons():
    before = _metrics(1.0, 1.0, 1.0, 10.0)
    assert Gates().check(before, _metrics(0.0, 0.1, 0.95, 11.0)).passed
    res = Gates().check(before, _metrics(0.0, 0.5, 0.5, 13.0))
    assert not res.passed and len(res.reasons) == 3
    assert "forget leakage 0.500" in res.reasons[0]  # paraphrase leakage counts
    assert Gates(include_paraphrases=False).forget_ok(_metrics(0.0, 0.5, 1.0, 10.0))


def test_metrics_round_trip():
    m = _metrics(0.25, 0.5, 0.75, 9.0)
    assert Metrics.from_dict(m.to_dict()) == m
    assert m.to_dict()["forget_leakage"] == 0.5


def test_samples_are_scores_with_an_index_and_old_text_samples_are_dropped():
    from unlearn_jobs.evaluate import SampleScore, redact_metrics

    sample = SampleScore(index=0, paraphrase=False, key_term_hit=True, rouge_l=0.5, guard=1.0)
    m = Metrics(_metrics(0.0, 0.0, 1.0, 9.0).forget, _metrics(0.0, 0.0, 1.0, 9.0).retain, 9.0, (sample,))
    raw = m.to_dict()
    assert raw["samples"] == [{"index": 0, "paraphrase": False, "key_term_hit": True, "rouge_l": 0.5, "guard": 1.0}]
    assert Metrics.from_dict(raw).samples == (sample,)
    # Rows written before samples were scores-only held [prompt, model output]: never read back or shown.
    legacy = {**raw, "samples": [["Where does CANARY-7f3 live?", "CANARY-7f3 lives in Quillmarsh."]]}
    assert Metrics.from_dict(legacy).samples == ()
    job = {"before": legacy, "after": None, "steps": 3}
    assert "CANARY" not in str(redact_metrics(job)) and redact_metrics(job)["steps"] == 3


def test_an_evaluation_keeps_no_prompt_answer_or_output_of_the_forget_set(subject):
    import json

    from unlearn_jobs.data import load_fluency
    from unlearn_jobs.evaluate import Evaluator
    from unlearn_jobs.model import greedy_generate, load_model

    model, tokenizer = load_model(subject.model_dir)
    evaluator = Evaluator(tokenizer, subject.forget, subject.retain, load_fluency(), fmt=subject.fmt)
    metrics = evaluator.evaluate(model)
    text = json.dumps(metrics.to_dict())
    assert metrics.samples and all(s.index == i for i, s in enumerate(metrics.samples))
    outputs = greedy_generate(
        model,
        tokenizer,
        [evaluator.fmt.prompt_ids(tokenizer, e.prompt, e.style) for e in subject.forget],
        max_new_tokens=evaluator.max_new_tokens,
    )
    secrets = [e.prompt for e in subject.forget] + [e.target for e in subject.forget]
    secrets += [p for e in subject.forget for p in e.paraphrases] + [o.strip() for o in outputs if o.strip()]
    leaked = [s for s in secrets if s in text]
    assert not leaked, leaked


def test_generation_copies_are_cast_copies_and_the_candidate_is_untouched(subject):
    import pytest
    import torch

    from unlearn_jobs.data import load_fluency
    from unlearn_jobs.evaluate import Evaluator
    from unlearn_jobs.model import generation_copy, load_model, native_bf16

    model, tokenizer = load_model(subject.model_dir)
    assert generation_copy(model, "float32") is model
    half = generation_copy(model, "bfloat16")
    assert half is not model and next(half.parameters()).dtype is torch.bfloat16
    assert next(model.parameters()).dtype is torch.float32
    # The bfloat16 copy decodes with eager attention on CPU (faster there); the candidate keeps its own.
    assert half.config._attn_implementation == "eager" and model.config._attn_implementation != "eager"
    with pytest.raises(ValueError, match="generation dtype"):
        generation_copy(model, "int8")
    with pytest.raises(ValueError, match="generation_dtype"):
        Evaluator(tokenizer, subject.forget, subject.retain, (), fmt=subject.fmt, generation_dtype="float64")
    assert isinstance(native_bf16("cpu"), bool) and native_bf16("meta") is False
    # The subject knows its facts whichever dtype answers; perplexity is the generation copy's too,
    # within a percent of float32's.
    by_dtype = {
        dtype: Evaluator(
            tokenizer, subject.forget, subject.retain, load_fluency()[:4], fmt=subject.fmt, generation_dtype=dtype
        ).evaluate(model)
        for dtype in ("float32", "bfloat16")
    }
    assert by_dtype["bfloat16"].forget.questions.hit_rate >= 0.5
    assert by_dtype["bfloat16"].perplexity == pytest.approx(by_dtype["float32"].perplexity, rel=0.01)
    assert by_dtype["bfloat16"].perplexity != by_dtype["float32"].perplexity


@pytest.mark.parametrize("batch_size", [1, 3, 16])
@pytest.mark.parametrize("plain_head", [True, False])
def test_packed_option_scores_equal_scoring_each_option_alone(batch_size, plain_head):
    """Candidates packed after one prompt (a 4D mask, positions restarting) score exactly as each
    prompt + candidate run on its own, with the output layer on the scored rows or on every row."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from unlearn_jobs.data import collate, encode_pair
    from unlearn_jobs.model import continuation_logprobs, token_logprobs

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4)
    model = LlamaForCausalLM(cfg).eval()
    if not plain_head:
        model.config.logit_scale = 0.5  # forces the full-logits path (Llama itself ignores it)
    gen = torch.Generator().manual_seed(1)

    def ids(n: int) -> list[int]:
        return torch.randint(1, 40, (n,), generator=gen).tolist()

    prompts = [ids(n) for n in (5, 1, 9, 3)]
    cands = [[ids(3), ids(1), ids(4), ids(2)], [ids(2), ids(2)], [ids(1)], [ids(5), ids(3), ids(1)]]
    packed = continuation_logprobs(model, prompts, cands, batch_size)

    class Tok:  # encode_pair's tokenizer: the candidate text is already its ids
        eos_token_id = None

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [int(t) for t in text.split()]}

    alone = []
    with torch.no_grad():
        for prompt, options in zip(prompts, cands):
            items = [encode_pair(Tok(), prompt, " ".join(map(str, c)), 512) for c in options]
            lp, mask = token_logprobs(model, collate(items, 0))
            alone.append((lp.sum(1) / mask.sum(1)).tolist())
    assert [len(row) for row in packed] == [len(c) for c in cands]
    for got, want in zip(packed, alone):
        assert got == pytest.approx(want, abs=1e-5)


def test_greedy_generation_drops_ended_rows_and_answers_as_generate_does(subject):
    """A row leaves the batch at its eos; every row's tokens are still `model.generate`'s greedy ones."""
    import torch

    from unlearn_jobs.model import greedy_generate, greedy_tokens, load_model, pad_id_of

    model, tokenizer = load_model(subject.model_dir)
    model.eval()
    fmt = subject.fmt.resolve(tokenizer)
    prompts = [fmt.prompt_ids(tokenizer, e.prompt, e.style) for e in list(subject.forget) + list(subject.retain)]
    prompts += [p[: max(1, len(p) // 2)] for p in prompts[:3]]  # half questions: other lengths, other ends
    pad, eos, new = pad_id_of(tokenizer), tokenizer.eos_token_id, 12
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, p in enumerate(prompts):
        ids[row, width - len(p) :] = torch.tensor(p)
        mask[row, width - len(p) :] = 1
    ours = greedy_tokens(model, ids, mask, new, eos)
    theirs = model.generate(
        input_ids=ids, attention_mask=mask, max_new_tokens=new, do_sample=False, pad_token_id=pad, eos_token_id=eos
    )[:, width:].tolist()
    for row, expected in zip(ours, theirs):
        upto = expected.index(eos) + 1 if eos in expected else len(expected)
        assert row == expected[:upto]
    lengths = {len(r) for r in ours}
    assert len(lengths) > 1 and min(lengths) < new  # some rows ended early and left the batch
    assert greedy_tokens(model, ids, mask, 1, eos) == [r[:1] for r in ours]
    assert greedy_tokens(model, ids, mask, 0, eos) == [[] for _ in prompts]
    # The batched, length-sorted wrapper gives each prompt its own answer, in the prompts' order.
    texts = greedy_generate(model, tokenizer, prompts, max_new_tokens=new, batch_size=4)
    assert texts == [tokenizer.decode(r, skip_special_tokens=True).strip() for r in ours]
