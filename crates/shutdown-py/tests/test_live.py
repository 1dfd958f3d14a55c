"""A live TradingNode (examples/nautilus/live_node.py: the Sandbox venue, synthetic quotes) as an
operator meets it: a real process, real signals."""

from __future__ import annotations

import json
import signal

from process import Proc


def book(proc: Proc) -> dict[str, str]:
    [line] = proc.lines("book Book-001-001 ")
    return json.loads(line)


def report(tmp_path) -> dict:
    return json.loads((tmp_path / "shutdown-report.json").read_text())


def test_sigterm_cancels_the_book_keeps_the_stop_halts_trading_and_exits_0(tmp_path):
    proc = Proc("live_node.py", "--orders", "3", cwd=tmp_path)
    proc.wait_out("ready")
    proc.signal(signal.SIGTERM)
    code = proc.wait()
    r = report(tmp_path)
    assert code == r["exit_code"] == 0, proc.stderr
    assert r["reason"] == "SIGTERM"
    assert book(proc) == {
        "open": "FILLED",
        "entry-0": "CANCELED",
        "entry-1": "CANCELED",
        "entry-2": "CANCELED",
        "take_profit": "CANCELED",
        "stop": "ACCEPTED",
    }
    assert proc.lines("trading_state ") == ["HALTED"]
    # Nautilus's own residual check, after the pipeline, finds only what was kept on purpose.
    residuals = [line for line in proc.out + proc.err if "Residual" in line]
    assert residuals and all("STOP_MARKET" in line or "Position(" in line for line in residuals), residuals
    assert "Traceback" not in proc.stderr


def test_a_second_sigterm_skips_a_hanging_close_and_exits_10_with_the_runners_note(tmp_path):
    proc = Proc("live_node.py", "--hang-disconnect", cwd=tmp_path)
    proc.wait_out("ready")
    proc.signal(signal.SIGTERM)
    proc.wait_err("step=close")
    proc.signal(signal.SIGTERM)
    proc.wait_err("nautilus_shutdown: SIGTERM: hurry")
    code = proc.wait()
    r = report(tmp_path)
    assert code == r["exit_code"] == 10, proc.stderr
    close = next(s for s in r["steps"] if s["name"] == "close")
    assert close["outcome"] == "skipped"
    assert close["error"] == "interrupted: second signal, non-critical steps are skipped"
    assert book(proc)["stop"] == "ACCEPTED"
    assert "Traceback" not in proc.stderr


def test_a_third_sigterm_forces_exit_12_while_a_critical_step_hangs(tmp_path):
    config = tmp_path / "shutdown.toml"
    config.write_text(
        'timeout_secs = 60\nreport_path = "shutdown-report.json"\n'
        '[[steps]]\nkind = "halt"\n[[steps]]\nkind = "cancel"\n'
        '[[steps]]\nkind = "close"\ncritical = true\ntimeout_secs = 50\n'
    )
    proc = Proc("live_node.py", "--hang-disconnect", "--config", str(config), cwd=tmp_path)
    proc.wait_out("ready")
    proc.signal(signal.SIGTERM)
    proc.wait_err("step=close")
    proc.signal(signal.SIGTERM)
    proc.wait_err("nautilus_shutdown: SIGTERM: hurry")
    proc.signal(signal.SIGTERM)
    code = proc.wait(limit=20)
    r = report(tmp_path)
    assert code == r["exit_code"] == 12, proc.stderr
    assert r["forced_by"] == "SIGTERM"
    close = next(s for s in r["steps"] if s["name"] == "close")
    assert close["outcome"] == "timed_out"
    assert close["error"].startswith("interrupted: shutdown forced by SIGTERM"), close
    assert "Traceback" not in proc.stderr
