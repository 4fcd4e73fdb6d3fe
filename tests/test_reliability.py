"""Reliability: the bad-input catalogue (benchmarks/catalogue.py) through the app and the CLIs, a client
that disconnects mid-request, a view that crashes, paths outside the upload area, startup faults."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from benchmarks import catalogue

from conftest import rest_call

pytest_plugins = ["app_server"]
ROOT = Path(__file__).resolve().parents[1]


CASE_IDS = [c.name for c in catalogue.CASES]


@pytest.mark.app
@pytest.mark.integration
@pytest.mark.parametrize("case", catalogue.CASES, ids=CASE_IDS)
def test_app_answers_each_bad_input_and_keeps_serving(client, tmp_path, case):
    outcome = catalogue.api_outcome(client, case, tmp_path)
    assert catalogue.matches(outcome, case.expect), outcome
    assert catalogue.server_healthy(client)


@pytest.mark.parametrize("cli", ["predict", "embed"])
@pytest.mark.parametrize("case", catalogue.CASES, ids=CASE_IDS)
def test_clis_answer_each_bad_input(tiny_checkpoint, tiny_backbone_dir, tmp_path, case, cli):
    extra = {"predict": ["--checkpoint", str(tiny_checkpoint)], "embed": ["--backbone", str(tiny_backbone_dir)]}
    main = getattr(catalogue, cli).main
    outcome = catalogue.cli_outcome(main, case, tmp_path, extra[cli])
    assert catalogue.matches(outcome, case.cli_expect or case.expect), outcome


@pytest.mark.app
@pytest.mark.integration
def test_client_disconnect_mid_request_leaves_the_server_healthy(app_url, client):
    from gradio_client import Client

    impatient = Client(app_url, verbose=False)
    job = impatient.submit("\n".join(f"a long request, sentence {i}" for i in range(1500)), api_name="/predict")
    time.sleep(0.5)
    job.cancel()
    impatient.close()
    deadline = time.monotonic() + 60  # bounded: the cancelled work may still finish first
    while not catalogue.server_healthy(client):
        assert time.monotonic() < deadline, "the server stopped answering after a client disconnected"
        time.sleep(1)


@pytest.mark.app
@pytest.mark.integration
def test_paths_outside_the_upload_area_are_never_read(app_url):
    body = json.dumps({"data": [{"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}]}).encode()
    try:
        stream = rest_call(app_url, "/load_file", body)
    except urllib.error.HTTPError as err:  # refused before it reaches our code
        stream = err.read().decode("utf-8", "replace")
    assert "root:" not in stream
    assert "error" in stream.lower() or "only files uploaded" in stream


def test_a_crashing_view_still_returns_the_others(tiny_checkpoint, monkeypatch):
    from mtl_core.serving import service
    from mtl_core.serving.predictor import Predictor

    def broken(*_args, **_kwargs):
        raise RuntimeError("simulated projection bug")

    monkeypatch.setattr(service, "map_view", broken)
    out = service.Service(Predictor.load(tiny_checkpoint)).analyse("my card is lost\ngreat app\nwhere is my money")
    assert len(out["predictions"]) == 3 and len(out["similarity"]["matrix"]) == 3
    assert "could not be computed" in out["projection"]["error"]


@pytest.mark.parametrize("fault, expected", [
    ("missing_weights", "weights.safetensors is missing"),
    ("corrupt_weights", "corrupt or not a safetensors file"),
    ("missing_backbone", "cannot load the backbone"),
])
def test_startup_faults_name_the_file_and_the_fix(tiny_checkpoint, tmp_path, fault, expected):
    checkpoint = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, checkpoint)
    if fault == "missing_weights":
        (checkpoint / "weights.safetensors").unlink()
    elif fault == "corrupt_weights":
        (checkpoint / "weights.safetensors").write_bytes(b"not really safetensors")
    else:
        config = json.loads((checkpoint / "config.json").read_text())
        config["backbone"] = str(tmp_path / "no_such_model")
        (checkpoint / "config.json").write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if k not in ("MTL_AUTH", "MTL_BACKBONE")}
    proc = subprocess.run([sys.executable, "app.py", "--checkpoint", str(checkpoint), "--port", "0"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode != 0 and last.startswith("error:") and expected in last, proc.stderr[-1500:]
