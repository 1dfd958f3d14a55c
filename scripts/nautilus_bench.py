"""One node, one book, three ways to stop it, side by side: NautilusTrader's own stop, Nautilus with
``manage_stop=True`` strategies, and the shutdown pipeline (``nautilus_shutdown``).

The node is ``examples/nautilus/live_node.py`` (a TradingNode on the Sandbox venue with synthetic
quotes): 20 strategies, each holding a long of 1 BTC, 9 entry limits, a reduce-only take-profit and
a reduce-only stop: 200 working orders and 20 positions with stops. Nautilus's cache database and
the pipeline's snapshot go to a redis-server of this script's own. For each way, three runs: the
seconds from SIGTERM to the process's exit (median), and what the venue holds once the strategies
stopped (read from the Sandbox venue's matching engines before it dies with the process).

Usage (the venv of scripts/python-env.sh): ``target/py-venv/bin/python scripts/nautilus_bench.py``
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "crates" / "shutdown-py" / "tests"))

from process import Proc  # noqa: E402
from servers import redis_server  # noqa: E402

BOOKS, ORDERS, RUNS, POST_STOP = 20, 9, 3, "1.0"
WAYS = [
    ("nautilus", "Nautilus's own stop"),
    ("manage_stop", "Nautilus, manage_stop=True"),
    ("pipeline", "the pipeline (nautilus_shutdown)"),
]


def run(way: str, directory: pathlib.Path, port: int) -> dict:
    env = {"REDIS_URL": f"redis://127.0.0.1:{port}"}
    subprocess.run(["redis-cli", "-p", str(port), "flushall"], check=True, capture_output=True)
    proc = Proc(
        "live_node.py",
        "--books", str(BOOKS), "--orders", str(ORDERS), "--stop", way,
        "--redis", f"127.0.0.1:{port}", "--post-stop", POST_STOP,
        cwd=directory, env=env,
    )
    proc.wait_out("ready", limit=120)
    sent = time.monotonic()
    proc.signal(signal.SIGTERM)
    code = proc.wait(limit=120)
    took = time.monotonic() - sent
    [venue] = proc.lines("venue ")
    report_file = directory / "shutdown-report.json"
    confirmed = "no: Nautilus writes its cache database as it goes, and nothing reads it back"
    if way == "pipeline":
        report = json.loads(report_file.read_text())
        flush = next(s for s in report["steps"] if s["kind"] == "flush")
        counts = flush["details"].get("counts")
        confirmed = f"yes: {flush['details']['written_to'].split()[0]} snapshot of {counts[0]} orders, {counts[1]} positions, read back ({flush['outcome']})"
        report_file.unlink()
    return {"code": code, "seconds": took, "venue": json.loads(venue), "confirmed": confirmed}


def main() -> int:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = pathlib.Path(tmp)
        with redis_server(directory) as port:
            for way, name in WAYS:
                runs = [run(way, directory, port) for _ in range(RUNS)]
                venues = {json.dumps(r["venue"], sort_keys=True) for r in runs}
                if len(venues) != 1:
                    print(f"{name}: the venue differed from run to run: {venues}", file=sys.stderr)
                rows.append((name, runs))
    print(f"one TradingNode (Sandbox venue), {BOOKS} strategies: {BOOKS * (ORDERS + 1)} working orders, "
          f"{BOOKS} positions with stops; timeout_post_stop {POST_STOP} s; {RUNS} runs each")
    print()
    print("| stop | SIGTERM to exit (s, median) | exit code | orders left working | stops kept | positions left (unprotected) | state confirmed in Redis |")
    print("|---|---|---|---|---|---|---|")
    for name, runs in rows:
        v = runs[0]["venue"]
        seconds = statistics.median(r["seconds"] for r in runs)
        codes = sorted({r["code"] for r in runs})
        print(f"| {name} | {seconds:.2f} | {', '.join(map(str, codes))} | {v['working']} | {v['stops']} | "
              f"{v['positions']} ({v['unprotected']}) | {runs[0]['confirmed']} |")
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
