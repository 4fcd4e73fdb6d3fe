"""pytest plugin (loaded with `pytest_plugins = ["app_server"]`): one app server per test session.

The app runs as a real subprocess (`python app.py`) on 127.0.0.1 and a free port, with the real bundled
backbone and the shipped checkpoint; before a checkpoint exists it starts with untrained heads, which
needs the data folder's intent labels (MTL_DATA_DIR, else ../shared/data). Set MTL_TEST_APP_URL to
test an app that is already running instead.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mtl_core.data import default_data_dir

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "assets" / "checkpoint"
START_TIMEOUT_S = 180  # model + Gradio import and load; generous for a busy 2-core machine
REFERENCE_TIMEOUT_S = 150  # UMAP compilation + embedding and fitting the reference map, in the background
ARTIFACTS = ROOT / "tests" / "_artifacts"
EXISTING_APP_ENV = "MTL_TEST_APP_URL"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_command(port: int) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MTL_AUTH", "MTL_DATA_DIR", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT")}
    env["GRADIO_ANALYTICS_ENABLED"] = "False"
    command = [sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port)]
    if not (CHECKPOINT / "config.json").is_file():
        data_dir = default_data_dir()
        if not (data_dir / "intent" / "labels.json").is_file():
            pytest.skip(f"no checkpoint in {CHECKPOINT} and no data folder at {data_dir} for untrained heads")
        command += ["--data-dir", str(data_dir)]
    return command, env


def wait_until_serving(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"app exited with code {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/gradio_api/info", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    pytest.fail(f"app did not answer within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def app_url() -> Iterator[str]:
    if os.environ.get(EXISTING_APP_ENV):  # drive an app that is already running (while developing)
        yield os.environ[EXISTING_APP_ENV].rstrip("/")
        return
    port = free_port()
    command, env = app_command(port)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "app_server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@pytest.fixture(scope="session")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


@pytest.fixture(scope="session")
def reference_ready(client) -> bool:
    """Wait (bounded) until /projection places sentences on the reference map; UMAP is compiled by then."""
    deadline = time.monotonic() + REFERENCE_TIMEOUT_S
    while time.monotonic() < deadline:
        if "reference map" in client.predict("probe", api_name="/projection")["method"]:
            return True
        time.sleep(3)
    pytest.fail(f"the reference map was not ready after {REFERENCE_TIMEOUT_S} s")
