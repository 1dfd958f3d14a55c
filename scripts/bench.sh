#!/usr/bin/env bash
# Every benchmark figure of BENCHMARKS.md, each printed beside its limit. Needs redis-server (installed
# when missing and run as root). Usage: scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
  else
    echo "redis-server is missing: sudo apt-get install -y redis-server" >&2
    exit 1
  fi
fi
cargo bench -q -p shutdown-core --bench runner
cargo bench -q -p shutdown-steps --bench cancel
cargo bench -q -p shutdown-steps --bench verify
cargo bench -q -p shutdown-steps --bench time_to_safe
cargo bench -q -p shutdown-redis --bench flush
cargo bench -q -p shutdown-redis --bench fleet
cargo bench -q -p shutdown-examples --bench shutdown
# The NautilusTrader side by side: the venv of scripts/python-env.sh (built when missing).
scripts/python-env.sh target/py-venv >/dev/null
target/py-venv/bin/python scripts/nautilus_bench.py
