"""`python app.py` as a child process on 127.0.0.1 and a free port: used by the tests, the benchmarks and
the screenshot script, so starting and stopping the app is written once."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Removed from the child's environment: no login, our host and port, and no data folder unless passed.
UNSET = ("MTL_AUTH", "MTL_DATA_DIR", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppProcess:
    """with AppProcess(log, args=[...], env={...}) as app: app.wait_serving(); ... app.url ..."""

    def __init__(self, log: Path, args: list[str] | None = None, env: dict[str, str] | None = None,
                 launcher: list[str] | None = None):
        """launcher: what runs instead of app.py (e.g. ["-m", "benchmarks.timed_app", FILE]); it takes app.py's arguments."""
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.command = [sys.executable, *(launcher or [str(ROOT / "app.py")]), "--host", "127.0.0.1", "--port", str(port),
                        *(args or [])]
        self.env = {k: v for k, v in os.environ.items() if k not in UNSET}
        self.env.update(GRADIO_ANALYTICS_ENABLED="False", **(env or {}))
        self.log = log

    def __enter__(self) -> "AppProcess":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "w") as out:
            self.started = time.perf_counter()
            self.proc = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *_) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def wait_serving(self, timeout_s: float = 180) -> None:
        """Return once the app answers; RuntimeError (with the log's end) if it exits or times out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited with code {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/gradio_api/info", timeout=5):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"app did not answer within {timeout_s} s:\n{self.log_tail()}")
