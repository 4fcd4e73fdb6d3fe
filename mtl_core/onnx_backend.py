"""Optional ONNX Runtime backend for the backbone: the same BERT, run with fused CPU kernels.

    MTL_BACKEND=onnx python app.py        or        SentenceEncoder.load(backend="onnx")

The torch model stays the source of truth. This module exports its BertModel to ONNX once, runs
onnxruntime's transformer graph optimizer over it (fused Attention, SkipLayerNormalization, BiasGelu,
EmbedLayerNormalization kernels) and caches the result on disk, keyed by the weights and the library
versions. `OnnxBackbone(input_ids, attention_mask)` returns the last hidden states (B, T, H) as a torch
tensor, so pooling, normalisation and the heads stay the torch code. It matches torch to float noise
(tests/test_onnx_backend.py; cosine >= 0.99999 on real sentences) because it is the same fp32 arithmetic,
only fused; quantisation, which would not be, is deliberately absent.

Needs `onnxruntime` and `onnx` (see requirements.txt); CPU only.
"""
from __future__ import annotations

import copy
import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import transformers
from torch import nn

log = logging.getLogger(__name__)

ONNX_CACHE_ENV = "MTL_ONNX_CACHE"
OPSET = 17
INPUTS = ("input_ids", "attention_mask")


def cache_dir() -> Path:
    """$MTL_ONNX_CACHE, else ~/.cache/mtl_core/onnx."""
    return Path(os.environ.get(ONNX_CACHE_ENV) or Path.home() / ".cache" / "mtl_core" / "onnx")


def model_key(bert: nn.Module) -> str:
    """Fingerprint of the weights, the config and the exporting libraries: a changed backbone or an
    upgraded torch/transformers/onnxruntime never reuses a stale export."""
    import onnxruntime

    digest = hashlib.blake2b(digest_size=12)
    digest.update(f"{torch.__version__}|{transformers.__version__}|{onnxruntime.__version__}|{OPSET}".encode())
    digest.update(bert.config.to_json_string().encode())
    for name, tensor in sorted(bert.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class _LastHidden(nn.Module):
    """BertModel called by keyword, as the exporter's positional tracing cannot."""

    def __init__(self, bert: nn.Module):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def export(bert: nn.Module, path: Path) -> None:
    """Trace the backbone to ONNX with dynamic batch and sequence axes.

    Eager attention on a copy (the caller's model keeps SDPA): onnxruntime's optimizer recognises the
    eager attention subgraph and fuses it; the SDPA graph it leaves unfused. The TorchScript exporter
    (dynamo=False) is used for the same reason: the optimizer's BERT patterns match its graphs.
    """
    model = copy.deepcopy(bert).eval()
    model.set_attn_implementation("eager")
    ids = torch.tensor([[101, 2023, 2003, 102], [101, 2023, 102, 0]])  # two lengths: no shape baked in
    axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "last_hidden_state")}
    with warnings.catch_warnings(), torch.no_grad():
        # Tracer warnings about shape-dependent Python branches: they only concern key/value padding
        # for generation, constant zero here; tests check other batch sizes and lengths.
        warnings.simplefilter("ignore")
        torch.onnx.export(_LastHidden(model), (ids, (ids != 0).long()), str(path), dynamo=False,
                          input_names=list(INPUTS), output_names=["last_hidden_state"],
                          dynamic_axes=axes, opset_version=OPSET)


def optimize(raw: Path, out: Path, num_heads: int, hidden_size: int) -> dict[str, int]:
    """Fuse the transformer subgraphs; returns how many of each fused operator the graph now has."""
    from onnxruntime.transformers import optimizer

    model = optimizer.optimize_model(str(raw), model_type="bert", num_heads=num_heads, hidden_size=hidden_size)
    model.save_model_to_file(str(out))
    return {op: n for op, n in model.get_fused_operator_statistics().items() if n}


def build(bert: nn.Module, path: Path) -> None:
    """Export + optimise into `path`, atomically (a second process never reads a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        raw, fused = Path(tmp) / "raw.onnx", Path(tmp) / "fused.onnx"
        export(bert, raw)
        stats = optimize(raw, fused, bert.config.num_attention_heads, bert.config.hidden_size)
        os.replace(fused, path)
    log.info("ONNX backbone written to %s (fused operators: %s)", path, stats)


class OnnxBackbone:
    """Callable like the torch backbone stack: (input_ids, attention_mask) (B, T) -> hidden (B, T, H)."""

    def __init__(self, path: Path, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        # Same thread count as torch, so a comparison of the two is about kernels, not threads.
        options.intra_op_num_threads = threads or torch.get_num_threads()
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    @classmethod
    def from_bert(cls, bert: nn.Module) -> "OnnxBackbone":
        """The cached optimised export of `bert`, building it first if needed (a few seconds)."""
        path = cache_dir() / f"{model_key(bert)}.onnx"
        if not path.is_file():
            log.info("exporting the backbone to ONNX (once per backbone and library versions)")
            build(bert, path)
        return cls(path)

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        feed = {"input_ids": input_ids.cpu().numpy().astype(np.int64),
                "attention_mask": attention_mask.cpu().numpy().astype(np.int64)}
        (hidden,) = self.session.run(None, feed)  # (B, T, H) float32
        return torch.from_numpy(hidden)
