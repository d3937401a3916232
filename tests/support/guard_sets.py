"""The guard's probe sets on disk (tests/gateway/guard/data/): JSON files by name, and forget entries from them.

>>> entries = load_entries("forget_set")  # or "adversarial_forget_set"
>>> leaks = load("leaks_test")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway.guard import ForgetEntry

DATA = Path(__file__).resolve().parents[1] / "gateway" / "guard" / "data"


def load(name: str) -> Any:
    return json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))


def entry_from_json(e: dict[str, Any]) -> ForgetEntry:
    return ForgetEntry(
        e["forget_id"],
        e["subject"],
        tuple(e["texts"]),
        tuple((q, a) for q, a in e["qa"]),
        tuple(e["literals"]),
        e["action"],
        e["reason"],
    )


def load_entries(name: str) -> list[ForgetEntry]:
    return [entry_from_json(e) for e in load(name)]
