"""bench_sequential: its per-request matrices, and a smoke run of requests unlearned one after another."""

from __future__ import annotations

import json

from benchmarks.bench_sequential import leakage_matrices, main, request_rates
from benchmarks.leakage_tables import matrix_table
from unlearn_jobs.data import examples_from_facts
from unlearn_jobs.facts import generate_fact_set


def test_rates_per_request_and_lower_triangular_matrices():
    facts = generate_fact_set(2, 2, seed=0)
    examples = examples_from_facts(facts.facts).examples
    ids = [p.person_id for p in facts.people]
    rates = request_rates(examples, {"greedy": [(0, True), (1, False), (2, False)], "yes_no": []}, ids)
    assert rates[ids[0]] == {"greedy": 0.5, "yes_no": None} and rates[ids[1]]["greedy"] == 0.0
    history = [{"leakage": rates}, {"leakage": rates}]
    matrices = leakage_matrices(history, ids, ["greedy"])
    assert matrices["greedy"] == [[0.5], [0.5, 0.0]]
    assert "| 2 | 0.50 | 0.00 |" in matrix_table(matrices["greedy"], "k", "j")


def test_smoke_run_unlearns_requests_in_sequence(tiny_base, tmp_path):
    out = tmp_path / "seq"
    args = [
        "--model", str(tiny_base), "--out", str(out), "--people", "4", "--facts-per-person", "2",
        "--requests", "2", "--method", "grad_diff", "--steps", "1", "--ft-epochs", "1", "--ft-lr", "1e-3",
        "--threads", "1", "--device", "cpu", "--views", "fill_blank,yes_no", "--final-views", "best_of_n",
        "--best-of-n", "2", "--fluency", "3", "--eval-retain", "0",
    ]  # fmt: skip
    rc = main(args)
    assert rc == 0
    report = json.loads((out / "results.json").read_text())
    assert [h["job"] for h in report["history"]] == [1, 2]
    assert report["views"] == ["greedy", "fill_blank", "yes_no", "best_of_n"]
    first, second = (h["leakage"] for h in report["history"])
    # After job k only requests 1..k are filed and measured; the final views only after the last job.
    assert list(first) == report["requests"][:1] and list(second) == report["requests"]
    assert set(first[report["requests"][0]]) == {"greedy", "fill_blank", "yes_no"}
    assert set(second[report["requests"][0]]) == set(report["views"])
    assert [len(row) for row in report["matrices"]["yes_no"]] == [1, 2]
    assert set(report["history"][0]["phases"]) >= {"load", "baseline", "unlearn", "evaluate"}
    assert isinstance(report["final_gate_failures"], list)
    assert "Leakage on `fill_blank`" in (out / "results.md").read_text()
    assert "requests over their gate on a view" in (out / "results.md").read_text()
    # The stored figures re-checked against the gates, no jobs run.
    assert main([*args, "--regate"]) == 0
