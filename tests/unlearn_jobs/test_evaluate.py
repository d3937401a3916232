"""Leakage metrics and gates, without a model."""

from __future__ import annotations

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
