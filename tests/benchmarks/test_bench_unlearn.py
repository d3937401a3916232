"""bench_unlearn: its tables, and a smoke run on a tiny model (every model on every view, per attribute)."""

from __future__ import annotations

import json

import pytest

from benchmarks.bench_unlearn import main, parse_views
from benchmarks.leakage_tables import breakdown_table, tally, targets_table, view_leakage, views_table
from unlearn_jobs.data import examples_from_facts
from unlearn_jobs.facts import generate_fact_set
from unlearn_jobs.views import ALL_VIEWS, DEFAULT_VIEWS


def test_tables_of_views_and_attributes():
    models = {
        "subject": {"fill_blank": {"n": 4, "rate": 1.0}, "yes_no": {"n": 4, "rate": 0.75, "chance": 0.5}},
        "npo": {"fill_blank": {"n": 4, "rate": 0.0}},
    }
    table = views_table(models, ["fill_blank", "yes_no"])
    assert "| fill_blank | 1.00 | 0.00 |" in table and "| yes_no | 0.75 (chance 0.50) | – |" in table
    examples = examples_from_facts(generate_fact_set(2, 2, seed=0).facts)
    counts = tally(examples.examples, [(0, True), (1, False), (2, True), (3, True)])
    assert counts == {"birthplace": [2, 2], "job": [1, 2]}
    text = breakdown_table({"subject": {"forget Q": counts}}, ["birthplace", "job"], ["forget Q", "retain Q"])
    assert "| subject | birthplace (place) | 2/2 | – |" in text
    assert parse_views("all") == ALL_VIEWS and parse_views("default") == DEFAULT_VIEWS and parse_views("none") == ()


def test_targets_table_reads_choice_views_as_accuracy_above_chance():
    assert view_leakage({"rate": 0.3, "chance": None}) == 0.3
    assert view_leakage({"rate": 0.2, "chance": 0.25}) == 0.0  # below chance: no knowledge shown
    assert view_leakage({"rate": 0.45, "chance": 0.25}) == pytest.approx(0.2)
    anchor = {
        "wall_s": 500.0,
        "views": {
            "json": {"n": 20, "rate": 0.0, "chance": None},
            "best_of_n": {"n": 20, "rate": 0.05, "chance": None},
            "multiple_choice": {"n": 20, "rate": 0.30, "chance": 0.25},
        },
    }
    jobs = [
        {
            "name": "good",
            "retain_rel": 0.99,
            "vs_retrain": 0.15,
            "views": {
                "json": {"n": 20, "rate": 0.0, "chance": None},
                "best_of_n": {"n": 20, "rate": 0.06, "chance": None},  # 1.2 x 0.05
                "multiple_choice": {"n": 20, "rate": 0.25, "chance": 0.25},
            },
        },
        {
            "name": "leaky",
            "retain_rel": 0.90,
            "wall_s": 150.0,  # no vs_retrain: 150 / the anchor's 500
            "views": {
                "json": {"n": 20, "rate": 0.05, "chance": None},
                "best_of_n": {"n": 20, "rate": 0.0, "chance": None},
                "multiple_choice": {"n": 20, "rate": 0.45, "chance": 0.25},
            },
        },
    ]
    lines = targets_table(anchor, jobs, ["json", "best_of_n", "multiple_choice", "yes_no"]).splitlines()
    assert lines[2] == "| good | 3/3 | – | 0.99 ✓ | 0.15 ✓ | yes |"
    assert lines[3] == ("| leaky | 1/3 | json 0.05 vs 0.00, multiple_choice 0.20 vs 0.05 | 0.90 ✗ | 0.30 ✗ | no |")


def test_smoke_run_reports_every_model_on_every_view(tiny_base, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(
        [
            "--model", str(tiny_base), "--out", str(out), "--people", "4", "--facts-per-person", "2",
            "--forget-frac", "0.25", "--ft-epochs", "1", "--ft-lr", "1e-3", "--methods", "grad_diff", "--steps", "1",
            "--no-guard", "--skip-base", "--threads", "1", "--device", "cpu", "--views", "all", "--best-of-n", "2",
            "--relearn-steps", "1", "--fluency", "3", "--eval-retain", "0",
        ]
    )  # fmt: skip
    assert rc == 0
    report = json.loads((out / "results.json").read_text())
    names = [r["name"] for r in report["rows"]]
    assert names == ["subject (before unlearning)", "retrain on retain only", "grad_diff"]
    for row in report["rows"]:
        assert set(row["views"]) == set(ALL_VIEWS), row["name"]
    assert {"subject", "retrain"} <= set(report["attribute_breakdown"])
    assert set(report["attribute_breakdown"]["subject"]) == {"forget Q", *ALL_VIEWS, "retain Q"}
    md = (out / "results.md").read_text()
    assert "Leakage views" in md and "| quantized_int4 |" in md
    assert "| subject | birthplace (place) |" in md
    grad_diff = report["rows"][-1]
    assert grad_diff["baseline_s"] > 0  # the job measured its parent itself
    assert "Against the targets" in md and "| grad_diff | " in md
    # The stored results print the same tables again, measuring nothing.
    assert main(["--tables-from", str(out / "results.json")]) == 0
    assert "| grad_diff | " in capsys.readouterr().out
