#!/usr/bin/env bash
# A Python environment with NautilusTrader and the `nautilus_shutdown` package built from this
# checkout (maturin, into the venv). Usage: scripts/python-env.sh [VENV_DIR]   (default .venv)
#
# Python: the newest 3.12-3.14 found (pyenv's versions, then python3.14..python3.12 on PATH) with
# nautilus_trader==1.231.0; else Python 3.11 with nautilus_trader==1.221.0, the newest release for
# 3.11. PYTHON=path chooses the interpreter. Prints which ran. Fails, saying why, when neither can
# be set up.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv}

candidates=()
# PYTHON=/path/to/python3.x picks the interpreter (3.11 gets nautilus_trader==1.221.0).
if [ -n "${PYTHON:-}" ]; then
  if "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
    candidates=("__none__")
  else
    candidates=("$PYTHON")
  fi
elif command -v pyenv >/dev/null 2>&1; then
  root=$(pyenv root)
  for v in $(ls -1 "$root/versions" 2>/dev/null | grep -E '^3\.1[234]\.[0-9]+$' | sort -t. -k2,2nr -k3,3nr); do
    candidates+=("$root/versions/$v/bin/python3")
  done
fi
if [ -z "${PYTHON:-}" ]; then
  for v in 3.14 3.13 3.12; do
    if command -v "python$v" >/dev/null 2>&1; then candidates+=("$(command -v "python$v")"); fi
  done
fi

python=""
for c in "${candidates[@]}"; do
  if [ -x "$c" ] && "$c" -c 'import sys, venv; sys.exit(not ((3, 12) <= sys.version_info[:2] < (3, 15)))' 2>/dev/null; then
    python=$c
    nautilus="1.231.0"
    break
  fi
done
if [ -z "$python" ]; then
  for c in ${PYTHON:-python3.11 python3}; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      python=$(command -v "$c")
      nautilus="1.221.0"
      break
    fi
  done
fi
if [ -z "$python" ]; then
  echo "python-env: FAILED: no Python 3.11-3.14 found (looked in pyenv's versions and on PATH)" >&2
  exit 1
fi
version=$("$python" -c 'import platform; print(platform.python_version())')
echo "==> Python $version ($python) with nautilus_trader==$nautilus into $venv"

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import sys; sys.exit(sys.version.split()[0] != '$version')" 2>/dev/null; then
  rm -rf "$venv"
  "$python" -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import nautilus_trader, sys; sys.exit(nautilus_trader.__version__ != '$nautilus')" 2>/dev/null; then
  if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check "nautilus_trader==$nautilus" "maturin>=1.8,<2" "pytest>=8"; then
    echo "python-env: FAILED: cannot install nautilus_trader==$nautilus for Python $version" >&2
    exit 1
  fi
fi
VIRTUAL_ENV=$(cd "$venv" && pwd) PATH="$(cd "$venv" && pwd)/bin:$PATH" \
  "$venv/bin/maturin" develop -q -m crates/shutdown-py/Cargo.toml
echo "python-env: Python $version, nautilus_trader $("$venv/bin/python" -c 'import nautilus_trader; print(nautilus_trader.__version__)'), nautilus_shutdown $("$venv/bin/python" -c 'import nautilus_shutdown; print(nautilus_shutdown.__version__)') in $venv"
