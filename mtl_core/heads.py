"""Task heads, registered by kind. Adding a task type is one class plus one HEAD_TYPES entry."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import HeadConfig


@dataclass
class HeadInputs:
    """What the shared encoder hands every head; a head reads the part it needs.

    pooled: (B, H) unit-length mean-pooled task representation, read by sentence-level heads.
    token_states: (B, T, H) and attention_mask: (B, T), for token-level heads (e.g. NER) later;
    None when training from cached pooled vectors.
    """

    pooled: torch.Tensor
    token_states: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None


class SentenceClassificationHead(nn.Module):
    """LayerNorm -> Dropout -> [Linear -> GELU -> Dropout] -> Linear over the pooled sentence vector.

    The pooled vector has unit length, so its 384 coordinates are ~0.05: the LayerNorm rescales them
    to unit variance, where default initialisation and ordinary learning rates work; without it the
    linear layer's inputs are ~20x smaller than its initialisation assumes, and it learns that much slower.
    """

    def __init__(self, config: HeadConfig, input_size: int):
        super().__init__()
        layers: list[nn.Module] = [nn.LayerNorm(input_size), nn.Dropout(config.dropout)]
        width = input_size
        if config.hidden:
            layers += [nn.Linear(input_size, config.hidden), nn.GELU(), nn.Dropout(config.dropout)]
            width = config.hidden
        layers.append(nn.Linear(width, config.num_labels))
        self.net = nn.Sequential(*layers)

    def forward(self, inputs: HeadInputs) -> torch.Tensor:
        return self.net(inputs.pooled)  # (B, H) -> (B, num_labels)


HEAD_TYPES: dict[str, type[nn.Module]] = {"sentence": SentenceClassificationHead}


def build_head(config: HeadConfig, input_size: int) -> nn.Module:
    if config.kind not in HEAD_TYPES:
        raise ValueError(f"unknown head kind {config.kind!r} for head {config.name!r}; "
                         f"valid kinds: {sorted(HEAD_TYPES)}")
    return HEAD_TYPES[config.kind](config, input_size)
