"""Predictor: sentences in, numpy embeddings and label strings out. Also the predict CLI:

    python -m mtl_core.predict --input FILE(.txt|.csv) --output FILE.csv
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import checkpoint
from .cli import io_parser, run_cli
from .encoder import SentenceEncoder, check_sentences
from .model import MultiTaskModel

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "assets" / "checkpoint"
CHECKPOINT_ENV = "MTL_CHECKPOINT"
PROGRESS_THRESHOLD = 256  # show a progress bar from this many sentences on
CSV_COLUMNS = ["text", "intent", "intent_score", "sentiment", "sentiment_score",
               "sentiment_negative", "sentiment_neutral", "sentiment_positive"]


@dataclass(frozen=True)
class Row:
    """One sentence's results: its embedding (H,) and each task's probabilities (C,)."""

    embedding: np.ndarray
    probs: dict[str, np.ndarray]


def sentence_key(text: str) -> bytes:
    """A short fixed-size key, so a cache of long sentences stays small."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class SentenceCache:
    """The most recently used sentences' results, shared by all requests of a server: the same
    sentences sent to /predict, then /similarity and /projection, or analysed again, skip the model.
    About 2 kB per sentence. Safe to use from several request threads."""

    def __init__(self, max_items: int = 10_000):
        self.max_items = max_items
        self._rows: OrderedDict[bytes, Row] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    def lookup(self, keys: list[bytes]) -> dict[bytes, Row]:
        """The rows of the keys (from sentence_key) that are cached."""
        found = {}
        with self._lock:
            for key in keys:
                if key in self._rows:
                    self._rows.move_to_end(key)
                    found[key] = self._rows[key]
        return found

    def store(self, rows: dict[bytes, Row]) -> None:
        with self._lock:
            for key, row in rows.items():
                self._rows[key] = row
                self._rows.move_to_end(key)
            while len(self._rows) > self.max_items:
                self._rows.popitem(last=False)


@dataclass
class Results:
    """One encoder pass over N sentences: embeddings (N, H) and per-task probabilities (N, C)."""

    texts: list[str]
    embeddings: np.ndarray
    probs: dict[str, np.ndarray]
    labels: dict[str, list[str]]

    def row(self, i: int) -> Row:
        return Row(self.embeddings[i].copy(), {t: p[i].copy() for t, p in self.probs.items()})

    @classmethod
    def from_rows(cls, texts: list[str], rows: list[Row], labels: dict[str, list[str]]) -> "Results":
        """Results of `texts` from one Row each (at least one)."""
        probs = {t: np.stack([r.probs[t] for r in rows]) for t in labels}
        return cls(texts, np.stack([r.embedding for r in rows]), probs, labels)

    def top(self, task: str, i: int, k: int) -> list[tuple[str, float]]:
        order = np.argsort(-self.probs[task][i])[:k]
        return [(self.labels[task][j], float(self.probs[task][i, j])) for j in order]


class Predictor:
    def __init__(self, model: MultiTaskModel, top_k: int = 5, cache: SentenceCache | None = None):
        self.model = model.eval()
        self.top_k = top_k
        self.cache = cache  # the app sets one; batch CLIs and training read each sentence once

    @classmethod
    def load(cls, checkpoint_dir: str | Path | None = None, backbone: str | None = None,
             device: str = "cpu") -> "Predictor":
        """Load a trained checkpoint (default: $MTL_CHECKPOINT, else the one shipped in assets/)."""
        directory = checkpoint_dir or os.environ.get(CHECKPOINT_ENV) or DEFAULT_CHECKPOINT
        encoder = SentenceEncoder.load(backbone or checkpoint.read_config(directory).backbone, device)
        return cls(checkpoint.load(directory, encoder, device))

    @classmethod
    def untrained(cls, intent_labels: list[str], encoder: SentenceEncoder | None = None) -> "Predictor":
        """Random heads, explicitly flagged `trained=False`; callers must say so when showing output."""
        encoder = encoder or SentenceEncoder.load()
        return cls(MultiTaskModel.build(encoder, intent_labels))

    @property
    def trained(self) -> bool:
        return self.model.config.trained

    @property
    def encoder(self) -> SentenceEncoder:
        return self.model.encoder

    def run(self, sentences: list[str], batch_size: int = 32, show_progress: bool = False) -> Results:
        """Embeddings and calibrated probabilities for every task, from one encoder pass per batch.

        Each distinct sentence is computed once; with a cache, sentences seen before skip the model.
        """
        texts = check_sentences(sentences)
        keys = [sentence_key(t) for t in texts]
        known = self.cache.lookup(keys) if self.cache is not None else {}
        todo = {k: t for k, t in zip(keys, texts) if k not in known}  # distinct new sentences, in order
        fresh = self._forward(list(todo.values()), batch_size, show_progress)
        whole = len(todo) == len(texts)  # nothing known, no duplicates (or no sentences): the pass is the answer
        if whole and self.cache is None:
            return fresh  # no per-sentence rows needed
        rows = {k: fresh.row(i) for i, k in enumerate(todo)}
        if self.cache is not None:
            self.cache.store(rows)
        if whole:
            return fresh
        rows.update(known)
        return Results.from_rows(texts, [rows[k] for k in keys], fresh.labels)

    @torch.inference_mode()
    def _forward(self, texts: list[str], batch_size: int, show_progress: bool) -> Results:
        n, tasks = len(texts), self.model.task_names
        embeddings = np.zeros((n, self.encoder.hidden_size), dtype=np.float32)
        probs = {t: np.zeros((n, self.model.config.head(t).num_labels), dtype=np.float32) for t in tasks}
        batches = list(self.encoder.length_sorted_batches(texts, batch_size)) if texts else []
        for idx in tqdm(batches, desc="predict", unit="batch", disable=not show_progress):
            out = self.model(**self.encoder.tokenize([texts[i] for i in idx]))
            embeddings[idx] = out.embeddings.float().cpu().numpy()
            for task, logits in out.logits.items():
                probs[task][idx] = self.model.probabilities(task, logits).cpu().numpy()
        labels = {t: self.model.config.head(t).labels for t in tasks}
        return Results(texts, embeddings, probs, labels)

    def embed(self, sentences: list[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        """The general-purpose sentence embeddings (N, H): the same pass as run(), so it shares the cache."""
        return self.run(sentences, batch_size, show_progress).embeddings

    def predict(self, sentences: list[str], show_progress: bool = False) -> list[dict]:
        return to_records(self.run(sentences, show_progress=show_progress), self.top_k)


def to_records(results: Results, top_k: int = 5) -> list[dict]:
    records = []
    for i, text in enumerate(results.texts):
        intent = results.top("intent", i, top_k)
        sentiment = results.top("sentiment", i, 1)[0]
        probs = dict(zip(results.labels["sentiment"], map(float, results.probs["sentiment"][i])))
        records.append({"text": text,
                        "intent": {"label": intent[0][0], "score": intent[0][1], "top": intent},
                        "sentiment": {"label": sentiment[0], "score": sentiment[1], "probs": probs}})
    return records


def to_csv_rows(records: list[dict]) -> list[dict]:
    """Flat rows with CSV_COLUMNS, as written by the predict CLI and the app's download."""
    return [{"text": r["text"], "intent": r["intent"]["label"], "intent_score": round(r["intent"]["score"], 4),
             "sentiment": r["sentiment"]["label"], "sentiment_score": round(r["sentiment"]["score"], 4),
             **{f"sentiment_{k}": round(v, 4) for k, v in r["sentiment"]["probs"].items()}}
            for r in records]


def write_csv(rows: list[dict], path: str | Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = io_parser("Predict intent and sentiment for each sentence of a .txt or .csv file.",
                       output_help="CSV file to write")
    parser.add_argument("--checkpoint", default=None, help="checkpoint folder (default: assets/checkpoint)")

    def work(args: argparse.Namespace, sentences: list[str]) -> str:
        predictor = Predictor.load(args.checkpoint)
        records = predictor.predict(sentences, show_progress=len(sentences) >= PROGRESS_THRESHOLD)
        write_csv(to_csv_rows(records), args.output)
        note = "" if predictor.trained else " (UNTRAINED heads: predictions are random)"
        return f"wrote {len(records)} predictions to {args.output}{note}"

    return run_cli(parser, work, argv)


if __name__ == "__main__":
    raise SystemExit(main())
