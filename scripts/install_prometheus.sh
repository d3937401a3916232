#!/usr/bin/env bash
# Prometheus and promtool from the Debian package, when missing: the monitoring tests and the README's
# "run Prometheus against lethe serve" need them. Installs only; the package's own service is not
# started (the tests and the README run their own `prometheus` process).
set -euo pipefail
if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "setup: prometheus/promtool missing and no apt-get here: install Prometheus >= 2.40 yourself" >&2
  exit 0
fi
sudo=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then sudo=(sudo); else
    echo "setup: prometheus/promtool missing; run as root: apt-get install -y prometheus" >&2
    exit 0
  fi
fi
echo "setup: installing the Debian package prometheus (prometheus + promtool)"
# policy-rc.d answering 101 tells the package scripts not to start the service.
guard=/usr/sbin/policy-rc.d
added=0
if [ ! -e "$guard" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$guard" >/dev/null
  "${sudo[@]}" chmod +x "$guard"
  added=1
fi
trap '[ "$added" = 1 ] && "${sudo[@]}" rm -f "$guard"' EXIT
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get install -y --no-install-recommends prometheus >/dev/null \
  || { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y --no-install-recommends prometheus >/dev/null; }
