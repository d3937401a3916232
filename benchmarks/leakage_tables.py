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
