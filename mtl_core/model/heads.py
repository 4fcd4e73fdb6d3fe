"""Task heads, registered by kind. Adding a task type is one class plus one HEAD_TYPES entry."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from mtl_core.model.config import HeadConfig
from mtl_core.model.encoder import bf16_copy, pooled_layers


@dataclass
class HeadInputs:
    """What the shared encoder hands every head; a head reads the part it needs.

    pooled: (B, H) unit-length mean-pooled task representation, read by sentence-level heads.
    embedding: (B, H) the shown all-MiniLM-L6-v2 embedding (unit length), read by heads fitted on a user's
    examples; the same tensor as `pooled` when the model has no task layers, None when training.
    Every head here is sentence-level: a token-level task (e.g. NER) would add the token states here and
    a head that reads them.
    """

    pooled: torch.Tensor
    embedding: torch.Tensor | None = None


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


class ExampleHead(nn.Module):
    """A head fitted on a few labelled examples (tasks/fewshot.py), reading the shown embedding (B, H).

    params["method"]: "linear" (logistic regression, or a nearest centroid written as its linear layer,
    optionally after a residual adapter x -> normalise(x + A x)) or "knn" (cosine k-NN over the stored
    examples, a label's probability its share of the k votes, weighted by cosine).
    params["num_examples"] sizes the k-NN buffers, so a checkpoint can be rebuilt before its weights load.
    params["layers"] (an improved task, tasks/improve.py): the head has its own copy of the backbone's top
    that many layers; the model runs them (own_vector) and hands the head their output as its `embedding`.
    """

    def __init__(self, config: HeadConfig, input_size: int, backbone_layers: nn.ModuleList | None = None):
        super().__init__()
        params = config.params
        self.method = params.get("method", "linear")
        if self.method not in EXAMPLE_METHODS:
            raise ValueError(f"unknown method {self.method!r} for head {config.name!r}; valid: {EXAMPLE_METHODS}")
        self.num_labels = config.num_labels
        self.adapter = nn.Linear(input_size, input_size, bias=False) if params.get("adapter") else None
        if self.method == "knn":
            self.k = int(params["k"])
            self.register_buffer("examples", torch.zeros(int(params["num_examples"]), input_size))
            self.register_buffer("example_labels", torch.zeros(int(params["num_examples"]), dtype=torch.long))
        else:
            self.linear = nn.Linear(input_size, config.num_labels)
        self.layers = own_layers(config, backbone_layers)
        # a serving copy (see serve()), kept in a tuple so that it is no submodule: a checkpoint never stores it
        self.bf16_layers: tuple[nn.ModuleList, ...] = ()

    def serve(self, bf16: bool) -> "ExampleHead":
        """Eval mode and, for serving in bf16, a bf16 copy of its own layers (as MultiTaskModel.serve), made
        once: a session's task is served again with every request."""
        self.eval()
        if not bf16 or self.layers is None:
            self.bf16_layers = ()
        elif not self.bf16_layers:
            self.bf16_layers = (bf16_copy(self.layers).requires_grad_(False),)
        return self

    def own_vector(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Its own layers on the backbone's token states where they start, mean-pooled, unit length:
        (B, T, H) -> (B, H)."""
        return pooled_layers(hidden, attention_mask, self.layers, self.bf16_layers[0] if self.bf16_layers else None)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.adapter is None:
            return x
        return nn.functional.normalize(x + self.adapter(x), dim=-1)  # (B, H) -> (B, H)

    def forward(self, inputs: HeadInputs) -> torch.Tensor:
        if inputs.embedding is None:
            raise ValueError("an example head reads the shown embedding, which these inputs lack")
        x = self.features(inputs.embedding.float())
        if self.method == "linear":
            return self.linear(x)  # (B, H) -> (B, C)
        return knn_logits(x, self.examples, self.example_labels, self.k, self.num_labels)


def own_layers(config: HeadConfig, backbone_layers: nn.ModuleList | None) -> nn.ModuleList | None:
    """A copy of the backbone's top params["layers"] layers (their trained weights load over it), or None."""
    count = int(config.params.get("layers", 0))
    if not count:
        return None
    if backbone_layers is None or not 0 < count <= len(backbone_layers):
        raise ValueError(f"head {config.name!r} has {count} own layers; the backbone has "
                         f"{0 if backbone_layers is None else len(backbone_layers)}")
    return copy.deepcopy(backbone_layers[len(backbone_layers) - count:]).requires_grad_(False)


def knn_logits(x: torch.Tensor, examples: torch.Tensor, labels: torch.Tensor, k: int, num_labels: int) -> torch.Tensor:
    """log of each label's cosine-weighted share of the k nearest examples' votes: (B, H) -> (B, C)."""
    sims = x @ examples.T  # (B, N)
    top, idx = sims.topk(min(k, len(examples)), dim=1)  # (B, k)
    votes = torch.zeros(len(x), num_labels, dtype=x.dtype, device=x.device)
    votes.scatter_add_(1, labels[idx], top.clamp(min=1e-6))  # (B, C)
    return torch.log(votes / votes.sum(1, keepdim=True) + 1e-6)


EXAMPLE_METHODS = ("linear", "knn")
HEAD_TYPES: dict[str, type[nn.Module]] = {"sentence": SentenceClassificationHead, "examples": ExampleHead}


def scaled_softmax(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Class probabilities softmax(logits / T): T > 1 softens over-confident logits (a head's calibration
    temperature, HeadConfig.temperature)."""
    return torch.softmax(logits.float() / temperature, dim=-1)


def build_head(config: HeadConfig, input_size: int, backbone_layers: nn.ModuleList | None = None) -> nn.Module:
    """The head of `config`; `backbone_layers` are what a head with its own layers copies the top of."""
    if config.kind not in HEAD_TYPES:
        raise ValueError(f"unknown head kind {config.kind!r} for head {config.name!r}; "
                         f"valid kinds: {sorted(HEAD_TYPES)}")
    if config.kind == "examples":
        return ExampleHead(config, input_size, backbone_layers)
    return HEAD_TYPES[config.kind](config, input_size)
