"""The long schemathesis run: every route of the app's OpenAPI schema, valid and invalid inputs, under no
key, an unknown key, each role and the admin token, with chat sent the served model's name.

    .venv/bin/python benchmarks/fuzz_api.py [--examples 100] [--seed-random]

In-process (the real FastAPI app, access control and key store on SQLite; fakes behind it, as in
tests/support/api_fakes.py): what it judges is the HTTP surface, not the engine. Counts: responses by
status, by operation and credential, and every failure (a 5xx, a status or content type the schema
does not document, a body off its schema, an error outside the OpenAI shape). Output: a markdown
report on stdout and in benchmarks/results/fuzz_api.md, the counts in benchmarks/results/fuzz_api.json.
Exit status 1 when anything failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from reporting import publish_report  # noqa: E402

from gateway.http.auth import AccessSettings  # noqa: E402
from gateway.ledger.actors import Role  # noqa: E402
from tests.gateway.http.test_fuzz import credentials  # noqa: E402
from tests.support.api_fakes import ADMIN_TOKEN, MODEL, build_gateway  # noqa: E402
from tests.support.fuzz import fuzz_app  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100, help="examples per operation and mode (default 100)")
    parser.add_argument("--seed-random", action="store_true", help="random inputs (default: derandomized)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        gw = build_gateway(Path(home), settings=AccessSettings(admin_token=ADMIN_TOKEN, chat_auth="keys"))
        gw.authority.file("f-own", gw.actors[Role.REQUESTER])
        creds = credentials(gw.secrets)
        started = time.perf_counter()
        report = fuzz_app(
            gw.app, creds, served_model=MODEL, max_examples=args.examples, derandomize=not args.seed_random
        )
        seconds = time.perf_counter() - started
    counts = report.to_dict()
    counts.update({"examples_per_operation_and_mode": args.examples, "seconds": round(seconds, 1)})
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fuzz_api.json").write_text(json.dumps(counts, indent=2, sort_keys=True) + "\n")
    lines = [
        "# Schemathesis over the OpenAPI schema (in-process)",
        "",
        f"`.venv/bin/python benchmarks/fuzz_api.py --examples {args.examples}`: {report.calls} responses in "
        f"{seconds:.0f} s, credentials: {', '.join(creds)}.",
        "",
        "| status | responses |",
        "|---|---|",
        *[f"| {status} | {n} |" for status, n in report.by_status().items()],
        "",
        f"5xx: {counts['server_errors']}; failures (undocumented status or content type, off-schema body, "
        f"error outside the OpenAI shape): {len(report.failures)}",
    ]
    lines += [f"- {key}" for key in report.failures]
    publish_report("\n".join(lines), RESULTS / "fuzz_api.md")
    return 1 if report.failures or counts["server_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
