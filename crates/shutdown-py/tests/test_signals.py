"""Signals to a real process: the example backtest (examples/nautilus/backtest.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from conftest import ROOT

EXAMPLE = ROOT / "examples" / "nautilus" / "backtest.py"


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(EXAMPLE), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_line(proc: subprocess.Popen, prefix: str, limit: float = 120.0) -> str:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line.strip()
        if line == "" and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"no line {prefix!r}; stderr:\n{proc.stderr.read()}")


def test_sigint_in_the_middle_of_a_long_run_ends_it_and_runs_the_pipeline_on_the_engines_book(tmp_path):
    proc = start("--quotes", "1000000", "--report", str(tmp_path / "report.json"))
    wait_line(proc, "ready")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    report = json.loads((tmp_path / "report.json").read_text())
    assert proc.returncode == report["exit_code"] == 0, err
    assert report["reason"] == "SIGINT"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    book = json.loads(next(line for line in out.splitlines() if line.startswith("book "))[5:])
    assert book == {
        "open": "FILLED",
        "entry": "CANCELED",
        "take_profit": "CANCELED",
        "stop": "ACCEPTED",
    }, out
    # The run was cut short by the signal, not finished.
    done, total = (int(w) for w in next(l for l in out.splitlines() if l.startswith("run ")).split()[1:4:2])
    assert done < total, out
    assert "nautilus_shutdown: SIGINT: graceful" in err
