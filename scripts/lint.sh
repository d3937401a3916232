#!/usr/bin/env bash
# Static checks (after `scripts/setup.sh`): ruff lint + format, mypy (strict on the guard, the ledger
# and the unlearning methods; the level of the rest is in pyproject.toml), import-linter contracts.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${LETHE_VENV:-.venv}
status=0
run() { echo "lint: $*"; "$@" || status=1; }
run "$VENV/bin/ruff" check .
run "$VENV/bin/ruff" format --check .
run "$VENV/bin/mypy"
run "$VENV/bin/lint-imports"
exit "$status"
