"""A child process whose stdout and stderr are read as they come (no pipe fills up), so a test can
wait for a line, bounded, then signal it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from conftest import ROOT

EXAMPLES = ROOT / "examples" / "nautilus"


class Proc:
    def __init__(self, script: str, *args: str, cwd=None, env: dict[str, str] | None = None) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, str(EXAMPLES / script), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env={**os.environ, **(env or {})},
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(stream, lines), daemon=True)
            for stream, lines in ((self.popen.stdout, self.out), (self.popen.stderr, self.err))
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, lines: list[str]) -> None:
        for line in stream:
            with self._changed:
                lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def _wait_for(self, lines: list[str], has, what: str, limit: float) -> str:
        deadline = time.monotonic() + limit
        with self._changed:
            while True:
                found = next((line for line in lines if has(line)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.popen.poll() is not None and not self._changed.wait(0.2)):
                    self.popen.kill()
                    raise AssertionError(f"no {what} within {limit}s\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}")
                self._changed.wait(min(left, 0.5))

    def wait_out(self, prefix: str, limit: float = 60.0) -> str:
        return self._wait_for(self.out, lambda line: line.startswith(prefix), f"stdout line {prefix!r}", limit)

    def wait_err(self, part: str, limit: float = 60.0) -> str:
        return self._wait_for(self.err, lambda line: part in line, f"stderr line with {part!r}", limit)

    def signal(self, sig) -> None:
        self.popen.send_signal(sig)

    def wait(self, limit: float = 60.0) -> int:
        """The exit code, once the process has exited and its last lines are read."""
        code = self.popen.wait(timeout=limit)
        for reader in self._readers:
            reader.join(timeout=5)
        return code

    @property
    def stdout(self) -> str:
        with self._changed:
            return "\n".join(self.out)

    @property
    def stderr(self) -> str:
        with self._changed:
            return "\n".join(self.err)

    def lines(self, prefix: str) -> list[str]:
        with self._changed:
            return [line[len(prefix):] for line in self.out if line.startswith(prefix)]
