"""A live TradingNode (examples/nautilus/live_node.py: the Sandbox venue, synthetic quotes) as an
operator meets it: a real process, real signals."""

from __future__ import annotations

import json
import signal
import subprocess

from conftest import ROOT
from process import Proc
from servers import redis_server


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
    assert residuals and all("STOP_MARKET" in line or "Position(" in line for line in residuals), proc.stdout
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


def shutdownctl(*args: str) -> subprocess.CompletedProcess:
    """The operator's command, built from this checkout when it is not there yet."""
    binary = ROOT / "target" / "debug" / "shutdownctl"
    if not binary.exists():
        subprocess.run(["cargo", "build", "-q", "-p", "shutdown-cli"], cwd=ROOT, check=True)
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=60)


def redis(port: int, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), "--raw", *args], capture_output=True, text=True, check=True
    ).stdout


def test_nautiluss_redis_cache_and_the_snapshot_hold_the_final_book_and_restore_says_clean(tmp_path):
    with redis_server(tmp_path) as port:
        url = f"redis://127.0.0.1:{port}"
        proc = Proc("live_node.py", "--redis", f"127.0.0.1:{port}", cwd=tmp_path, env={"REDIS_URL": url})
        proc.wait_out("restore: none")
        proc.wait_out("ready")
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.stderr
        # Nautilus's own keys: each order's events, the last one its final status.
        last = {}
        for key in redis(port, "keys", "trader-LIVE-001:orders:*").split():
            event = json.loads(redis(port, "lrange", key, "-1", "-1"))
            last[event["client_order_id"]] = event["type"]
        assert sorted(last.values()) == ["OrderAccepted", "OrderCanceled", "OrderCanceled", "OrderFilled"], last
        assert redis(port, "smembers", "trader-LIVE-001:index:orders_open").split() == [
            i for i, t in last.items() if t == "OrderAccepted"
        ]
        # The pipeline's snapshot beside them, and its report: the run was clean.
        assert redis(port, "exists", "{LIVE-001}:snapshot").strip() == "1"
        restored = shutdownctl(
            "restore", "--redis", url, "--trader-id", "LIVE-001",
            "--fallback-dir", str(tmp_path / "shutdown-fallback"), "--json",
        )
        assert restored.returncode == 0, restored.stdout + restored.stderr
        found = json.loads(restored.stdout)
        assert found["previous_shutdown"] == "clean", found
        assert found["counts"] == [4, 1, 1, 1], found


def test_with_redis_down_at_the_shutdown_the_snapshot_goes_to_the_file_and_exit_is_10(tmp_path):
    with redis_server(tmp_path) as port:
        url = f"redis://127.0.0.1:{port}"
        proc = Proc("live_node.py", cwd=tmp_path, env={"REDIS_URL": url})
        proc.wait_out("ready")
    # Redis is gone (the server was killed on leaving the block).
    proc.signal(signal.SIGTERM)
    code = proc.wait()
    r = report(tmp_path)
    assert code == r["exit_code"] == 10, proc.stderr
    flush = next(s for s in r["steps"] if s["name"] == "flush")
    assert flush["details"]["written_to"].startswith("file "), flush
    kept = json.loads((tmp_path / "shutdown-fallback" / "LIVE-001-snapshot.json").read_text())
    assert len(kept["snapshot"]["orders"]) == 4 and len(kept["snapshot"]["positions"]) == 1
    assert "127.0.0.1" in kept["redis_error"]
    assert any("redis" in e for e in r["sink_errors"]), r["sink_errors"]


def test_a_sigkill_in_the_middle_of_the_shutdown_is_seen_as_not_clean(tmp_path):
    with redis_server(tmp_path) as port:
        url = f"redis://127.0.0.1:{port}"
        proc = Proc("live_node.py", "--hang-disconnect", cwd=tmp_path, env={"REDIS_URL": url})
        proc.wait_out("ready")
        proc.signal(signal.SIGTERM)
        proc.wait_err("step=close")
        proc.signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
        restored = shutdownctl(
            "restore", "--redis", url, "--trader-id", "LIVE-001",
            "--fallback-dir", str(tmp_path / "shutdown-fallback"), "--json",
        )
        found = json.loads(restored.stdout)
        assert restored.returncode == 10, restored.stdout + restored.stderr
        assert found["previous_shutdown"] == "unclean", found
        assert "still marked running" in found["why"], found


def cancel_by_hand(port: int, order_type: str) -> str:
    """While the node is down, an operator cancels its working order of `order_type` at the venue;
    Nautilus's database learns it as its reconciliation would (the event appended, the order moved
    out of the open index). Returns the order's id."""
    for key in redis(port, "keys", "trader-LIVE-001:orders:*").split():
        events = [json.loads(e) for e in redis(port, "lrange", key, "0", "-1").splitlines()]
        if events[0].get("order_type") == order_type and events[-1]["type"] == "OrderAccepted":
            accepted = events[-1]
            canceled = {
                k: accepted[k]
                for k in ("trader_id", "strategy_id", "instrument_id", "client_order_id",
                          "venue_order_id", "account_id", "ts_event", "ts_init")
            }
            canceled.update(type="OrderCanceled", event_id="6a3a0c8e-0000-4000-8000-000000000001",
                            reconciliation=True)
            redis(port, "rpush", key, json.dumps(canceled))
            client_order_id = accepted["client_order_id"]
            redis(port, "srem", "trader-LIVE-001:index:orders_open", client_order_id)
            redis(port, "sadd", "trader-LIVE-001:index:orders_closed", client_order_id)
            return client_order_id
    raise AssertionError(f"no working {order_type} in Nautilus's database")


GATE = """timeout_secs = 10
[[steps]]
kind = "reconcile"
on_stop_gone = "{policy}"
[[steps]]
kind = "verify"
name = "protect"
on_unprotected = "{protect}"
[[steps]]
kind = "resume"
"""


def test_after_a_sigkill_the_next_start_is_not_clean_and_its_gate_holds_on_a_stop_cancelled_while_down(tmp_path):
    with redis_server(tmp_path) as port:
        env = {"REDIS_URL": f"redis://127.0.0.1:{port}"}
        args = ("--redis", f"127.0.0.1:{port}")
        first = Proc("live_node.py", *args, "--hang-disconnect", cwd=tmp_path, env=env)
        first.wait_out("ready")
        first.signal(signal.SIGTERM)
        first.wait_err("step=close")  # the snapshot is taken; the close hangs
        first.signal(signal.SIGKILL)
        first.wait()
        stop = cancel_by_hand(port, "STOP_MARKET")

        # The gate holds: the stop is gone, and the policy says keep trading halted.
        hold = tmp_path / "hold.toml"
        hold.write_text(GATE.format(policy="halt", protect="report"))
        second = Proc("live_node.py", *args, "--start-gate", str(hold), cwd=tmp_path, env=env)
        assert second.wait_out("restore: ").startswith("restore: unclean"), second.stdout
        held = second.wait_out("gate: ")
        assert held.startswith("gate: halted") and stop in held, held
        second.signal(signal.SIGTERM)
        second.wait()
        assert second.lines("trading_state ") == ["HALTED"], second.stdout
        assert json.loads(second.lines("venue ")[0])["unprotected"] == 1

        # Handled: the next start places the stop again, then opens.
        handle = tmp_path / "handle.toml"
        handle.write_text(GATE.format(policy="replace_stop", protect="place_stop"))
        third = Proc("live_node.py", *args, "--start-gate", str(handle), cwd=tmp_path, env=env)
        assert third.wait_out("gate: ") == "gate: open", third.stdout
        third.wait_out("ready")
        third.signal(signal.SIGTERM)
        assert third.wait() == 0, third.stderr
        assert json.loads(third.lines("venue ")[0]) == {"working": 0, "stops": 1, "positions": 1, "unprotected": 0}
