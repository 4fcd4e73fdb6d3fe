"""MultiTaskModel: one shared encoder pass, then the requested task heads.

          input_ids, attention_mask (B, T)
                      |
        backbone layers 0 .. L-k-1 (frozen, shared)      -> shared states (B, T, H)
               /                         \\
 original layers L-k .. L-1       fine-tuned copy of those k layers ("task layers")
 mean-pool + L2 -> embeddings     mean-pool + L2 -> pooled task vector -> heads -> logits
 (what similarity/UMAP show)

With k = 0 the two branches are the same tensor: heads read the very embedding the app shows.
A head improved on a user's examples (tasks/improve.py) has its own copy of the top layers, run on the
backbone's states at their depth: its vector is in MultiTaskOutput.head_vectors.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from mtl_core.model.config import HeadConfig, ModelConfig
from mtl_core.model.encoder import SentenceEncoder, bf16_copy, l2_normalize, mean_pool, pooled_layers
from mtl_core.model.heads import ExampleHead, HeadInputs, build_head, scaled_softmax


@dataclass
class MultiTaskOutput:
    embeddings: torch.Tensor  # (B, H) unit length, from the original backbone
    logits: dict[str, torch.Tensor]  # task name -> (B, num_labels)
    task_vector: torch.Tensor  # (B, H) unit length: what the heads read (the embedding itself when k = 0)
    head_vectors: dict[str, torch.Tensor] = field(default_factory=dict)  # task -> (B, H): a head's own layers' output


class MultiTaskModel(nn.Module):
    def __init__(self, encoder: SentenceEncoder, config: ModelConfig):
        super().__init__()
        num_layers = len(encoder.layers)
        if not 0 <= config.task_layers <= num_layers:
            raise ValueError(f"task_layers must be in 0..{num_layers}, got {config.task_layers}")
        self.config = config
        self.encoder = encoder.requires_grad_(False)  # the shared backbone is never trained in place
        self.split = num_layers - config.task_layers  # index of the first layer with a task copy
        self.task_layers = nn.ModuleList(copy.deepcopy(layer) for layer in encoder.layers[self.split:])
        self.task_layers.requires_grad_(True)
        self.bf16_task_layers: nn.ModuleList | None = None  # a serving copy, see serve()
        self.heads = nn.ModuleDict({h.name: build_head(h, encoder.hidden_size, encoder.layers) for h in config.heads})

    @classmethod
    def build(cls, encoder: SentenceEncoder, heads: list[HeadConfig], task_layers: int = 0) -> "MultiTaskModel":
        """A model with these heads around `encoder`, untrained (the built-in tasks' heads:
        tasks/definitions.builtin_heads)."""
        config = ModelConfig(heads=list(heads), backbone=encoder.name, task_layers=task_layers,
                             hidden_size=encoder.hidden_size, num_backbone_layers=len(encoder.layers))
        return cls(encoder, config)

    def serve(self) -> "MultiTaskModel":
        """Ready for serving: eval mode and, when the encoder serves in bf16, a bf16 copy of the task layers
        too (their trained weights cast once), so the whole pass multiplies in bf16 (benchmarks/analyse.py).
        Call again after changing the task layers; training passes, with gradients, never use the copy."""
        self.eval()
        bf16 = self.encoder.precision == "bf16"
        self.bf16_task_layers = bf16_copy(self.task_layers).requires_grad_(False) if bf16 else None
        for head in self.heads.values():
            self._serve_head(head)
        return self

    def _serve_head(self, head: nn.Module) -> nn.Module:
        return head.serve(self.encoder.precision == "bf16") if isinstance(head, ExampleHead) else head

    @property
    def task_names(self) -> list[str]:
        return list(self.heads)

    def add_head(self, config: HeadConfig, head: nn.Module) -> None:
        """One more task on the same pass (e.g. a head fitted on examples: tasks/fewshot.py)."""
        if config.name in self.heads:
            raise ValueError(f"this model already has a head named {config.name!r}; give the new task another name")
        self.config.heads = [*self.config.heads, config]
        self.heads[config.name] = self._serve_head(head.to(next(self.encoder.parameters()).device))

    def with_head(self, config: HeadConfig, head: nn.Module) -> "MultiTaskModel":
        """A view of this model with one more head, sharing every other module and leaving this model as it
        is: what a browser session's own task uses, so other sessions never see it."""
        view = copy.copy(self)
        view._modules = dict(self._modules)  # nn.Module keeps submodules here; the copy must not share the dict
        view.heads = nn.ModuleDict({**self.heads, config.name: self._serve_head(head)})
        view.config = replace(self.config, heads=[*self.config.heads, config])
        return view

    def freeze(self, part: str) -> None:
        """Stop training `part`: "task_layers" or a head name."""
        self._module(part).requires_grad_(False)

    def _module(self, part: str) -> nn.Module:
        if part == "task_layers":
            return self.task_layers
        if part in self.heads:
            return self.heads[part]
        raise ValueError(f"unknown part {part!r}; valid: ['task_layers'] + {self.task_names}")

    def _check_tasks(self, tasks: list[str] | None) -> list[str]:
        if tasks is None:
            return self.task_names
        unknown = [t for t in tasks if t not in self.heads]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; valid: {self.task_names}")
        return list(tasks)

    def probabilities(self, task: str, logits: torch.Tensor) -> torch.Tensor:
        """Calibrated class probabilities from one head's logits: softmax(logits / the head's temperature)."""
        return scaled_softmax(logits, self.config.head(task).temperature)

    def shared_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Token states entering the first task layer: (B, T) -> (B, T, H). Frozen: cacheable."""
        return self.encoder.hidden_states(input_ids, attention_mask, last_layer=self.split)

    def task_vector(self, shared: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """What the heads read: the task layers on the shared states, mean-pooled and unit length,
        (B, T, H) -> (B, H); with no task layers, the embedding itself."""
        return pooled_layers(shared, attention_mask, self.task_layers, self.bf16_task_layers)  # (B, T, H) -> (B, H)

    def heads_from_shared(self, shared: torch.Tensor, attention_mask: torch.Tensor, tasks: list[str] | None = None,
                          embedding: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Task layers + heads on shared states (the trainable part of the model): forward() without the
        shown embedding, so heads that read it (a user's task) get None."""
        return self.heads_from_pooled(self.task_vector(shared, attention_mask), tasks, embedding)

    def heads_from_pooled(self, pooled: torch.Tensor, tasks: list[str] | None = None,
                          embedding: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        inputs = HeadInputs(pooled, embedding)
        return {task: self.heads[task](inputs) for task in self._check_tasks(tasks)}

    def logits_from_embeddings(self, embeddings: torch.Tensor, attention_mask: torch.Tensor,
                               task: str) -> torch.Tensor:
        """One head's logits from input embeddings (what encoder.bert.embeddings makes of input_ids), by the
        layers forward() runs for that head: (B, T, H) -> (B, num_labels). Attribution methods
        (explain.py) differentiate through it with respect to the embeddings, which ids do not allow."""
        if self.config.head(self._check_tasks([task])[0]).reads == "task":  # the task layers alone
            shared = self.encoder.hidden_states(None, attention_mask, last_layer=self.split, hidden=embeddings)
            return self.heads_from_shared(shared, attention_mask, [task])[task]
        states = self.backbone_states(None, attention_mask, self.depths([task]), hidden=embeddings)
        return self.outputs(states, attention_mask, [task]).logits[task]

    def own_layer_tasks(self, tasks: list[str]) -> list[str]:
        """The tasks whose heads have their own copy of the top layers (improved on examples)."""
        return [t for t in tasks if getattr(self.heads[t], "layers", None) is not None]

    def depths(self, tasks: list[str] | None = None) -> set[int]:
        """Where the backbone's states are needed: the task layers' split and each own-layer head's start."""
        return {self.split, *(self.own_layers_start(t) for t in self.own_layer_tasks(self._check_tasks(tasks)))}

    def own_layers_start(self, task: str) -> int:
        """The depth where a head's own layers take over from the backbone's."""
        return len(self.encoder.layers) - len(self.heads[task].layers)

    def backbone_states(self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor, depths: set[int],
                        hidden: torch.Tensor | None = None) -> dict[int, torch.Tensor]:
        """The backbone's token states after each of `depths` layers and after its last, in one pass:
        depth -> (B, T, H). `hidden`: the input embeddings instead of input_ids."""
        states, done = {}, 0
        for depth in sorted({*depths, len(self.encoder.layers)}):
            hidden = self.encoder.hidden_states(input_ids, attention_mask, done, depth, hidden=hidden)
            states[depth], done = hidden, depth
        return states

    def outputs(self, states: dict[int, torch.Tensor], attention_mask: torch.Tensor,
                tasks: list[str] | None = None) -> MultiTaskOutput:
        """Embeddings, task vector and heads from the backbone's states (backbone_states)."""
        tasks = self._check_tasks(tasks)
        embeddings = l2_normalize(mean_pool(states[len(self.encoder.layers)], attention_mask))  # (B, H)
        task_vector = self.task_vector(states[self.split], attention_mask)  # with no task layers: == embeddings
        own = {t: self.heads[t].own_vector(states[self.own_layers_start(t)], attention_mask)
               for t in self.own_layer_tasks(tasks)}
        logits = self.heads_from_pooled(task_vector, [t for t in tasks if t not in own], embeddings)
        logits.update({t: self.heads[t](HeadInputs(task_vector, vector)) for t, vector in own.items()})
        return MultiTaskOutput(embeddings, {t: logits[t] for t in tasks}, task_vector, own)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                tasks: list[str] | None = None) -> MultiTaskOutput:
        states = self.backbone_states(input_ids, attention_mask, self.depths(tasks))
        return self.outputs(states, attention_mask, tasks)
