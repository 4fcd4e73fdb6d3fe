"""Predictor: sentences in, numpy embeddings and label strings out. Also the predict CLI:

    python -m mtl_core.predict --input FILE(.txt|.csv) --output FILE.csv
"""
from __future__ import annotations

import argparse
import csv
import os
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


@dataclass
class Results:
    """One encoder pass over N sentences: embeddings (N, H) and per-task probabilities (N, C)."""

    texts: list[str]
    embeddings: np.ndarray
    probs: dict[str, np.ndarray]
    labels: dict[str, list[str]]

    def top(self, task: str, i: int, k: int) -> list[tuple[str, float]]:
        order = np.argsort(-self.probs[task][i])[:k]
        return [(self.labels[task][j], float(self.probs[task][i, j])) for j in order]


class Predictor:
    def __init__(self, model: MultiTaskModel, top_k: int = 5):
        self.model = model.eval()
        self.top_k = top_k

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

    @torch.inference_mode()
    def run(self, sentences: list[str], batch_size: int = 32, show_progress: bool = False) -> Results:
        """Embeddings and calibrated probabilities for every task, from one encoder pass per batch."""
        texts = check_sentences(sentences)
        n, tasks = len(texts), self.model.task_names
        embeddings = np.zeros((n, self.encoder.hidden_size), dtype=np.float32)
        probs = {t: np.zeros((n, self.model.config.head(t).num_labels), dtype=np.float32) for t in tasks}
        batches = list(self.encoder.length_sorted_batches(texts, batch_size)) if texts else []
        for idx in tqdm(batches, desc="predict", unit="batch", disable=not show_progress):
            out = self.model(**self.encoder.tokenize([texts[i] for i in idx]))
            embeddings[idx] = out.embeddings.float().cpu().numpy()
            for task, logits in out.logits.items():
                scaled = logits.float() / self.model.config.head(task).temperature
                probs[task][idx] = torch.softmax(scaled, dim=-1).cpu().numpy()
        labels = {t: self.model.config.head(t).labels for t in tasks}
        return Results(texts, embeddings, probs, labels)

    def embed(self, sentences: list[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        """The general-purpose sentence embeddings (N, H), without running any head."""
        return self.encoder.encode(sentences, batch_size, show_progress)

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
