"""Frozen computation done once: cached inputs of the trainable part of a MultiTaskModel.

task_layers == 0: the trainable part is the heads, so we cache pooled embeddings (N, H).
task_layers == k: we cache the token states entering the first trainable layer, per sentence
(T_i, H), stored flat with lengths, and pad them per batch; each step runs only the top k layers.
Caches can be kept on disk (safetensors), keyed by backbone, split layer, precision and the exact texts.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.nn.utils.rnn import pad_sequence

from mtl_core.model.encoder import l2_normalize, mean_pool
from mtl_core.model.model import MultiTaskModel

log = logging.getLogger(__name__)


class FeatureStore:
    """Frozen features of one list of texts; `batch(idx)` gives what the trainable part consumes."""

    def __init__(self, flat: torch.Tensor, lengths: torch.Tensor | None):
        self.flat = flat  # (N, H) pooled, or (sum T_i, H) token states
        self.lengths = lengths  # None for pooled; (N,) token counts otherwise
        if lengths is not None:
            self.offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])

    @property
    def pooled(self) -> bool:
        return self.lengths is None

    def token_lengths(self) -> np.ndarray | None:
        return None if self.pooled else self.lengths.numpy()

    def __len__(self) -> int:
        return len(self.flat) if self.pooled else len(self.lengths)

    def batch(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, H) pooled vectors, or (B, T, H) padded token states + (B, T) attention mask."""
        if self.pooled:
            return self.flat[idx], None
        rows = [self.flat[self.offsets[i]:self.offsets[i + 1]] for i in idx]
        states = pad_sequence(rows, batch_first=True)  # B x (T_i, H) -> (B, T, H)
        mask = (torch.arange(states.shape[1])[None, :] < self.lengths[idx][:, None]).long()
        return states, mask


def logits_from_features(model: MultiTaskModel, store: FeatureStore, idx: list[int],
                         tasks: list[str]) -> dict[str, torch.Tensor]:
    """The trainable part of the model on cached features; equals model(...).logits."""
    inputs, mask = store.batch(idx)
    if store.pooled:
        return model.heads_from_pooled(inputs, tasks)
    return model.heads_from_shared(inputs, mask, tasks)


@torch.no_grad()
def store_logits(model: MultiTaskModel, store: FeatureStore, task: str, batch_size: int = 256) -> torch.Tensor:
    """One head's logits (N, C) for every row of `store`, in eval mode (no dropout)."""
    model.eval()
    chunks = [logits_from_features(model, store, list(range(i, min(i + batch_size, len(store)))), [task])[task]
              for i in range(0, len(store), batch_size)]
    return torch.cat(chunks)


@torch.inference_mode()
def compute_features(model: MultiTaskModel, texts: list[str], batch_size: int = 64,
                     desc: str = "features") -> FeatureStore:
    encoder = model.encoder
    pooled = model.config.task_layers == 0
    rows: list[torch.Tensor | None] = [None] * len(texts)
    tokenized = encoder.tokenize_ids(texts)
    for idx, batch in encoder.progress_batches(tokenized, batch_size, desc, leave=False):
        mask = batch["attention_mask"]
        shared = model.shared_states(**batch)  # (B, T, H)
        if pooled:
            out = l2_normalize(mean_pool(shared, mask))  # (B, H)
            for j, i in enumerate(idx):
                rows[i] = out[j].clone()
        else:
            for j, i in enumerate(idx):
                rows[i] = shared[j, : int(mask[j].sum())].clone()  # drop padding: (T_i, H)
    if pooled:
        return FeatureStore(torch.stack(rows) if rows else torch.zeros(0, encoder.hidden_size), None)
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    flat = torch.cat(rows) if rows else torch.zeros(0, encoder.hidden_size)
    return FeatureStore(flat, lengths)


def cache_key(model: MultiTaskModel, texts: list[str]) -> str:
    digest = hashlib.sha1()
    encoder = model.encoder
    digest.update(f"{encoder.name}|{encoder.bert.config.name_or_path}|split={model.split}|"
                  f"precision={encoder.precision}|pooled={model.config.task_layers == 0}|"
                  f"max={encoder.max_tokens}".encode())
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass") + b"\x00")
    return digest.hexdigest()[:20]


def cached_features(model: MultiTaskModel, texts: list[str], cache_dir: str | Path | None,
                    desc: str = "features") -> FeatureStore:
    """compute_features, memoised on disk under cache_dir (None: no disk cache)."""
    if cache_dir is None:
        return compute_features(model, texts, desc=desc)
    path = Path(cache_dir) / f"{cache_key(model, texts)}.safetensors"
    if path.is_file():
        data = load_file(str(path))
        log.info("loaded cached features %s", path)
        return FeatureStore(data["flat"], data.get("lengths"))
    store = compute_features(model, texts, desc=desc)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"flat": store.flat.contiguous()}
    if store.lengths is not None:
        tensors["lengths"] = store.lengths
    save_file(tensors, str(path))
    return store
