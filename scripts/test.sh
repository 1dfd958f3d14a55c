#!/usr/bin/env bash
# The whole test suite: installs what the tests need (when missing and allowed), then formatting,
# lints and every test of the workspace. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests use, as "command:package".
needs=("redis-server:redis-server" "redis-cli:redis-tools" "prometheus-pushgateway:prometheus-pushgateway" "promtool:prometheus" "openssl:openssl")
missing=()
for pair in "${needs[@]}"; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
# The Kubernetes manifest test reads YAML with python3-yaml.
python3 -c 'import yaml' >/dev/null 2>&1 || missing+=("python3-yaml")
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "==> installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "==> missing packages: ${missing[*]} (run as root, or: sudo apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
echo "==> cargo test"
set +e
cargo test --workspace --locked --no-fail-fast 2>&1 | tee target/test-output.txt
status=${PIPESTATUS[0]}
set -e
passed=$(grep -E '^test result:' target/test-output.txt | awk '{s+=$4} END {print s+0}')
failed=$(grep -E '^test result:' target/test-output.txt | awk '{s+=$6} END {print s+0}')

# The Python package against the real NautilusTrader (see scripts/python-env.sh for which Python
# and which Nautilus); a machine where neither installs fails here, saying why.
echo "==> nautilus_shutdown (pytest)"
set +e
scripts/python-env.sh target/py-venv 2>&1 | tee target/python-env.txt
env_status=${PIPESTATUS[0]}
if [ "$env_status" -eq 0 ]; then
  target/py-venv/bin/python -m pytest -p no:cacheprovider -q crates/shutdown-py/tests 2>&1 | tee target/pytest-output.txt
  py_status=${PIPESTATUS[0]}
else
  echo "nautilus_shutdown: the Python environment could not be set up (above); its tests did not run" | tee target/pytest-output.txt
  py_status=1
fi
set -e
py_passed=$({ grep -oE '[0-9]+ passed' target/pytest-output.txt || true; } | tail -1 | awk '{print $1+0}')
py_failed=$({ grep -oE '[0-9]+ (failed|error)' target/pytest-output.txt || true; } | awk '{s+=$1} END {print s+0}')
[ "$py_status" -ne 0 ] && [ "${py_failed:-0}" -eq 0 ] && py_failed=1
passed=$((passed + ${py_passed:-0}))
failed=$((failed + ${py_failed:-0}))
which_python=$(sed -n 's/^python-env: //p' target/python-env.txt | tail -1 || true)
echo "tests: ${passed} passed, ${failed} failed (Python: ${which_python:-not set up})" | tee target/test-summary.txt
if [ "$status" -ne 0 ]; then exit "$status"; fi
exit "$py_status"
