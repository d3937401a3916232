"""What every benchmark does with its result: print it and keep a copy under benchmarks/results/."""

from __future__ import annotations

from pathlib import Path


def publish_report(text: str, out: str | Path) -> None:
    print(text)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text + "\n")
