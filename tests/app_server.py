"""pytest plugin (loaded with `pytest_plugins = ["app_server"]`): one app server per test session.

The app runs as a real subprocess (`python app.py`) on 127.0.0.1 and a free port, with the real bundled
backbone and the shipped checkpoint; before a checkpoint exists it starts with untrained heads, which
needs the data folder's intent labels (MTL_DATA_DIR, else data/ in the checkout). Set MTL_TEST_APP_URL to
test an app that is already running instead.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.app_process import AppProcess
from mtl_core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "assets" / "checkpoint"
START_TIMEOUT_S = 180  # model + Gradio import and load; generous for a busy 2-core machine
REFERENCE_TIMEOUT_S = 150  # UMAP compilation + embedding and fitting the reference map, in the background
ARTIFACTS = ROOT / "tests" / "_artifacts"
EXISTING_APP_ENV = "MTL_TEST_APP_URL"


def app_arguments() -> list[str]:
    if (CHECKPOINT / "config.json").is_file():
        return []
    data_dir = Settings.from_env().training_data_dir
    if not (data_dir / "intent" / "labels.json").is_file():
        pytest.skip(f"no checkpoint in {CHECKPOINT} and no data folder at {data_dir} for untrained heads")
    return ["--data-dir", str(data_dir)]


@pytest.fixture(scope="session")
def app_url() -> Iterator[str]:
    if os.environ.get(EXISTING_APP_ENV):  # drive an app that is already running (while developing)
        yield os.environ[EXISTING_APP_ENV].rstrip("/")
        return
    with AppProcess(ARTIFACTS / "app_server.log", app_arguments()) as app:
        try:
            app.wait_serving(START_TIMEOUT_S)
        except RuntimeError as err:
            pytest.fail(str(err))
        yield app.url


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

