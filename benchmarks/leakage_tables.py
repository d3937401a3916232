"""Leakage-view figures as benchmark tables: every model on every view, and a per-attribute breakdown.

Pure functions over counts (no model, no torch): the unlearning benchmarks measure, these lay out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from unlearn_jobs.data import Example

# What kind of value each fictitious-person attribute is (which kinds of facts leak, which are lost).
ATTRIBUTE_KIND: dict[str, str] = {
    "birthplace": "place",
    "employer": "name",
    "job": "occupation",
    "birth_year": "date",
    "phone": "number",
}


def _cell(v: Mapping[str, Any] | None) -> str:
    if not v or not v.get("n"):
        return "–"
    text = f"{v['rate']:.2f}"
    if v.get("chance") is not None:
        text += f" (chance {v['chance']:.2f})"
    return text


def views_table(models: Mapping[str, Mapping[str, Mapping[str, Any]]], views: Sequence[str]) -> str:
    """One row per view, one column per model: the view's rate (accuracy and chance for choice views).

    `models`: model name -> view name -> `ViewScores.to_dict()` (a job's `metrics_after["views"]`).
    """
    names = list(models)
    lines = ["| view | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for view in views:
        lines.append(f"| {view} | " + " | ".join(_cell(models[m].get(view)) for m in names) + " |")
    return "\n".join(lines)


def attribute_of(example: Example) -> str:
    return example.attribute or "free-form"


def tally(
    examples: Sequence[Example],
    outcomes: Iterable[tuple[int, bool]],
    key: Callable[[Example], str] = attribute_of,
) -> dict[str, list[int]]:
    """key (the attribute by default) -> [leaks, units] from (example index, leaked) pairs."""
    out: dict[str, list[int]] = {}
    for index, leaked in outcomes:
        row = out.setdefault(key(examples[index]), [0, 0])
        row[0] += int(leaked)
        row[1] += 1
    return out


def breakdown_table(
    per_model: Mapping[str, Mapping[str, Mapping[str, Sequence[int]]]],
    attributes: Sequence[str],
    columns: Sequence[str],
) -> str:
    """Rows: model × attribute; columns: `columns` (e.g. "forget Q", each view, "retain Q") as leaks/n.

    `per_model`: model -> column -> attribute -> [leaks, n].
    """
    lines = [
        "| model | attribute (kind) | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for model, cols in per_model.items():
        for attribute in attributes:
            kind = ATTRIBUTE_KIND.get(attribute, "")
            cells = []
            for c in columns:
                leaks, n = (cols.get(c) or {}).get(attribute, (0, 0))
                cells.append(f"{leaks}/{n}" if n else "–")
            lines.append(f"| {model} | {attribute} ({kind}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def matrix_table(matrix: Sequence[Sequence[float | None]], row_label: str, col_label: str) -> str:
    """A lower-triangular matrix (row i: after job i+1; column j: request j+1) as a markdown table."""
    width = max((len(r) for r in matrix), default=0)
    lines = [
        f"| {row_label} \\ {col_label} | " + " | ".join(str(j + 1) for j in range(width)) + " |",
        "|---|" + "---|" * width,
    ]
    for i, row in enumerate(matrix):
        cells = [("–" if v is None else f"{v:.2f}") for v in row] + [""] * (width - len(row))
        lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def view_leakage(v: Mapping[str, Any]) -> float:
    """A view's leakage as one number: a key-term view's rate; a choice view's accuracy above chance
    (a model at or below chance shows no knowledge, however its guesses fall)."""
    if v.get("chance") is None:
        return float(v["rate"])
    return max(0.0, float(v["rate"]) - float(v["chance"]))


def targets_table(
    anchor: Mapping[str, Any],
    jobs: Sequence[Mapping[str, Any]],
    views: Sequence[str],
    *,
    view_ratio: float = 1.2,
    retain_min: float = 0.95,
    wall_max: float = 0.2,
) -> str:
    """Issue 17's three targets per job row (`name`, `views`, `retain_rel`, `vs_retrain` or `wall_s`)
    against the retrained anchor's row (`views`, `wall_s`: its fine-tune): every view
    within `view_ratio` x the retrained anchor's leakage (`view_leakage`; a small absolute slack keeps an
    anchor at 0 from demanding float equality), retain >= `retain_min` of the subject's, and the job's
    wall time <= `wall_max` of retraining's."""
    lines = [
        f"| job | views within {view_ratio:g}x the anchor | over | retain vs subject (≥ {retain_min:g}) "
        f"| job vs retrain (≤ {wall_max:g}) | all three |",
        "|---|---|---|---|---|---|",
    ]
    anchor_views: Mapping[str, Mapping[str, Any]] = anchor.get("views") or {}
    for row in jobs:
        got = row.get("views") or {}
        measured = [v for v in views if (got.get(v) or {}).get("n") and (anchor_views.get(v) or {}).get("n")]
        over = [
            f"{v} {view_leakage(got[v]):.2f} vs {view_leakage(anchor_views[v]):.2f}"
            for v in measured
            if view_leakage(got[v]) > view_ratio * view_leakage(anchor_views[v]) + 1e-9
        ]
        retain, wall = row.get("retain_rel"), row.get("vs_retrain")
        if wall is None and row.get("wall_s") and anchor.get("wall_s"):
            wall = row["wall_s"] / anchor["wall_s"]
        views_ok = bool(measured) and not over
        retain_ok = retain is not None and retain >= retain_min - 1e-9
        wall_ok = wall is not None and wall <= wall_max + 1e-9
        lines.append(
            f"| {row['name']} | {len(measured) - len(over)}/{len(measured)} | {', '.join(over) or '–'} "
            f"| {'–' if retain is None else f'{retain:.2f}'} {'✓' if retain_ok else '✗'} "
            f"| {'–' if wall is None else f'{wall:.2f}'} {'✓' if wall_ok else '✗'} "
            f"| {'yes' if views_ok and retain_ok and wall_ok else 'no'} |"
        )
    return "\n".join(lines)
