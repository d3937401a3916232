#!/usr/bin/env bash
# Run the test suite (after `scripts/setup.sh`). Tests start the servers they need themselves:
# `lethe serve` (Ray Serve + vLLM) per end-to-end module.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${LETHE_VENV:-.venv}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export HF_HUB_OFFLINE=1
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
