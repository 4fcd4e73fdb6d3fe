"""Improve a task: contrastive fine-tuning of the task's own copy of the backbone's top layers (SetFit's idea).

examples (text, label) -> backbone layers 0 .. L-k-1 once, token states cached (frozen, never trained)
  -> a copy of the original top k layers, trained on batches of a few labels x a few examples each with the
     supervised contrastive loss (Khosla et al., 2020), so that sentences of one label move together, plus a
     cross-entropy term through a cosine classifier that starts at the label centres (it sharpens the borders
     between labels; the classifier itself is thrown away)
  -> the task's vector: those layers, mean-pooled, unit length -> tasks/fewshot.py fits and chooses the head
     on it as on the shown embedding (the same candidates, the same cross-validation)

A step runs k of the L layers (2 of 6), forward and backward, on cached states: BANKING77 10-shot (770
examples) improves in well under a minute on 2 CPU cores (benchmarks/fewshot.py, docs/fewshot.md). Serving an
improved task costs its k layers on the shared states of each sentence.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mtl_core.errors import InputError
from mtl_core.model.encoder import SentenceEncoder, l2_normalize, pooled_layers
from mtl_core.tasks.scope import label_centroids

Progress = Callable[[int, int], None]  # (steps done, steps in all)
MAX_CACHED_TOKENS = 1_500_000  # the cached states in bf16: 1.5 M tokens x 384 x 2 bytes = 1.1 GB at most


@dataclass(frozen=True)
class ImproveSettings:
    """Chosen on the few-shot splits' dev sets (BANKING77 and CLINC150 `valid`; docs/fewshot.md lists what was
    tried): more steps or a higher learning rate over-fit, a lower tau or no cross-entropy term did worse."""

    layers: int = 2  # the top layers a task gets its own copy of
    steps: int = 100
    labels_per_batch: int = 16
    examples_per_label: int = 4
    learning_rate: float = 1e-4  # decays linearly to 0 over the steps
    tau: float = 0.1  # the contrastive loss's temperature
    ce_weight: float = 1.0  # weight of the cross-entropy term
    ce_scale: float = 20.0  # the cosine classifier's logits: scale x cosine


@dataclass
class StateCache:
    """Each example's token states entering the task's layers, (T_i, H) each, computed once (kept in bf16)."""

    states: list[torch.Tensor]

    @classmethod
    @torch.inference_mode()
    def compute(cls, encoder: SentenceEncoder, texts: list[str], first_layer: int, batch_size: int = 64,
                keep: torch.dtype = torch.float32) -> "StateCache":
        tokenized = encoder.tokenize_ids(texts)
        tokens = sum(len(ids) for ids in tokenized.ids)
        if keep == torch.bfloat16 and tokens > MAX_CACHED_TOKENS:
            raise InputError(f"the examples hold {tokens:,} word pieces; improving keeps at most "
                             f"{MAX_CACHED_TOKENS:,} in memory: use fewer or shorter examples")
        states: list[torch.Tensor | None] = [None] * len(texts)
        for idx, batch in encoder.batches(tokenized, batch_size):
            hidden = encoder.hidden_states(batch["input_ids"], batch["attention_mask"], last_layer=first_layer)
            for row, i in enumerate(idx):
                states[i] = hidden[row, :int(batch["attention_mask"][row].sum())].to(keep).clone()
        return cls(states)

    def batch(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded states (B, T, H), fp32, and the attention mask (B, T) of examples idx."""
        width = max(len(self.states[i]) for i in idx)
        hidden = torch.zeros(len(idx), width, self.states[idx[0]].shape[1])
        mask = torch.zeros(len(idx), width, dtype=torch.long)
        for row, i in enumerate(idx):
            hidden[row, :len(self.states[i])] = self.states[i]
            mask[row, :len(self.states[i])] = 1
        return hidden, mask


def pooled_examples(layers: nn.ModuleList, cache: StateCache, idx: list[int], group: int = 16) -> torch.Tensor:
    """The task's vectors (pooled_layers) of examples idx, (len(idx), H) in idx's order, run in groups of similar
    length: a random
    batch padded to its longest example would spend most of a step on padding (2.4x slower here)."""
    order = sorted(range(len(idx)), key=lambda j: len(cache.states[idx[j]]))
    parts = [pooled_layers(*cache.batch([idx[j] for j in order[start:start + group]]), layers)
             for start in range(0, len(order), group)]
    return torch.cat(parts)[torch.argsort(torch.tensor(order))]


def supervised_contrastive_loss(z: torch.Tensor, y: torch.Tensor, tau: float) -> torch.Tensor:
    """Mean over anchors of -log p(positive) among the batch, p a softmax of cosine / tau; z (B, H) unit."""
    logits = (z @ z.T / tau).fill_diagonal_(-1e9)  # (B, B): an example is not its own neighbour
    log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (y[:, None] == y[None, :]).float().fill_diagonal_(0)
    has = positives.sum(1) > 0
    return -((log_p * positives).sum(1)[has] / positives.sum(1)[has]).mean()


def sample_batch(by_label: list[np.ndarray], settings: ImproveSettings, rng: np.random.Generator) -> list[int]:
    """A few labels, a few examples of each (fewer when a label has fewer)."""
    chosen = rng.choice(len(by_label), min(settings.labels_per_batch, len(by_label)), replace=False)
    return [int(i) for c in chosen
            for i in rng.choice(by_label[c], min(settings.examples_per_label, len(by_label[c])), replace=False)]


def train_layers(encoder: SentenceEncoder, cache: StateCache, y: np.ndarray, settings: ImproveSettings,
                 seed: int = 0, progress: Progress | None = None) -> nn.ModuleList:
    """A copy of the encoder's top `settings.layers` layers, trained on the cached states of labelled examples."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    layers = copy.deepcopy(encoder.layers[len(encoder.layers) - settings.layers:]).float().requires_grad_(True)
    layers.train()  # BERT's dropout, as in SetFit's training
    labels = torch.from_numpy(y)
    by_label = [np.flatnonzero(y == c) for c in range(int(y.max()) + 1)]
    with torch.no_grad():
        start = pooled_examples(layers, cache, list(range(len(y))), 64).numpy()  # (N, H): the shown embeddings
    classifier = nn.Parameter(torch.from_numpy(label_centroids(start, y, len(by_label))))  # (C, H)
    optimiser = torch.optim.AdamW([*layers.parameters(), classifier], lr=settings.learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: 1 - step / settings.steps)
    with torch.enable_grad():
        for step in range(settings.steps):
            idx = sample_batch(by_label, settings, rng)
            z = pooled_examples(layers, cache, idx)  # (B, H)
            logits = settings.ce_scale * z @ l2_normalize(classifier).T  # (B, C)
            loss = (supervised_contrastive_loss(z, labels[idx], settings.tau)
                    + settings.ce_weight * nn.functional.cross_entropy(logits, labels[idx]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            if progress is not None:
                progress(step + 1, settings.steps)
    return layers.eval().requires_grad_(False)


def layer_embedder(encoder: SentenceEncoder, layers: nn.ModuleList,
                   chunk: int = 512) -> Callable[[list[str]], np.ndarray]:
    """texts -> the task's vectors (N, H), through the frozen backbone then the task's own layers; `chunk` texts
    at a time, so memory stays bounded."""
    first = len(encoder.layers) - len(layers)

    @torch.inference_mode()
    def embed(texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), encoder.hidden_size), dtype=np.float32)
        for start in range(0, len(texts), chunk):
            cache = StateCache.compute(encoder, texts[start:start + chunk], first)
            out[start:start + chunk] = pooled_examples(layers, cache, list(range(len(cache.states))), 64).numpy()
        return out

    return embed


@dataclass
class Improver:
    """What fit_task needs to improve a task: the encoder whose top layers it copies, and how to train them."""

    encoder: SentenceEncoder
    settings: ImproveSettings = ImproveSettings()
    progress: Progress | None = None

    def train(self, texts: list[str], y: np.ndarray, seed: int = 0) -> nn.ModuleList:
        first = len(self.encoder.layers) - self.settings.layers
        cache = StateCache.compute(self.encoder, texts, first, keep=torch.bfloat16)
        return train_layers(self.encoder, cache, y, self.settings, seed, self.progress)

    def embedder(self, layers: nn.ModuleList) -> Callable[[list[str]], np.ndarray]:
        return layer_embedder(self.encoder, layers)
