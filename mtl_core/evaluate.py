"""Metrics, calibration and the evaluation CLI.

    python -m mtl_core.evaluate --checkpoint DIR --data-dir DIR [--split test|dev] [--json]

Intent: accuracy (official Banking77 metric) and macro-F1. Sentiment: macro-averaged recall
(official SemEval-2017 4A / TweetEval metric), accuracy and macro-F1. All via scikit-learn.
Writes <checkpoint>/eval_<split>/: metrics.json, per-class reports, confusion-matrix PNGs.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, classification_report, f1_score, recall_score

from .checkpoint import CheckpointError
from .data import load_task

PRIMARY_METRIC = {"intent": "accuracy", "sentiment": "macro_recall"}
log = logging.getLogger(__name__)


def task_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro")),
            "macro_recall": float(recall_score(y_true, y_pred, average="macro"))}


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int = 15) -> float:
    """Weighted mean |accuracy - confidence| over equal-width confidence bins of the top class."""
    confidence, predicted = probs.max(axis=1), probs.argmax(axis=1)
    correct = (predicted == y_true).astype(np.float64)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def uncalibrated(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Undo temperature scaling: softmax(z / T) -> softmax(z), since T * log softmax(z / T) = z + const."""
    scaled = temperature * np.log(np.clip(probs, 1e-38, None))
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, steps: int = 200) -> float:
    """Temperature scaling (Guo et al., 2017): the T > 0 minimising dev NLL of softmax(logits / T)."""
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=steps)
    loss_fn = torch.nn.CrossEntropyLoss()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_fn(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def save_confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str], title: str,
                          path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    size = 6 if len(labels) <= 5 else 22
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(y_true, y_pred, labels=range(len(labels)), display_labels=labels,
                                            ax=ax, colorbar=False, xticks_rotation="vertical",
                                            include_values=len(labels) <= 5)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def class_probabilities(predictor, texts: list[str], task: str, cache_dir: str | None) -> np.ndarray:
    """Calibrated class probabilities (N, C); with cache_dir, the frozen part's outputs come from the
    training feature cache (same numbers, computed once per split for a whole sweep of runs)."""
    if cache_dir is None:
        return predictor.run(texts, batch_size=64, show_progress=True).probs[task]
    from .features import cached_features, store_logits

    model = predictor.model
    logits = store_logits(model, cached_features(model, texts, cache_dir, f"{task} features"), task)
    return model.probabilities(task, logits).numpy()


def evaluate_checkpoint(checkpoint_dir: str, data_dir: str, split: str = "test", cache_dir: str | None = None) -> dict:
    from .predict import Predictor

    predictor = Predictor.load(checkpoint_dir)
    out_dir = Path(checkpoint_dir) / f"eval_{split}"
    out_dir.mkdir(exist_ok=True)
    report: dict = {"checkpoint": str(checkpoint_dir), "split": split, "tasks": {}}
    for task in predictor.model.task_names:
        data = load_task(data_dir, task)
        part = getattr(data, split)
        probs = class_probabilities(predictor, part.texts, task, cache_dir)
        y_pred = probs.argmax(axis=1)
        metrics = task_metrics(part.labels, y_pred)
        metrics["ece"] = expected_calibration_error(probs, part.labels)
        temperature = predictor.model.config.head(task).temperature
        metrics["ece_uncalibrated"] = expected_calibration_error(uncalibrated(probs, temperature), part.labels)
        metrics["temperature"] = temperature
        metrics["n"] = len(part)
        report["tasks"][task] = metrics
        per_class = classification_report(part.labels, y_pred, labels=range(len(data.label_names)),
                                          target_names=data.label_names, digits=4, zero_division=0)
        (out_dir / f"{task}_report.txt").write_text(per_class)
        save_confusion_matrix(part.labels, y_pred, data.label_names, f"{task} ({split})",
                              out_dir / f"{task}_confusion.png")
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate a checkpoint on the official test sets.")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--split", default="test", choices=["test", "dev"])
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.add_argument("--cache-dir", help="reuse the training feature cache (e.g. runs/cache) for the frozen part")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        report = evaluate_checkpoint(args.checkpoint, args.data_dir, args.split, args.cache_dir)
    except (CheckpointError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for task, m in report["tasks"].items():
            print(f"{task:10s} n={m['n']:6d} acc={m['accuracy']:.4f} macro_f1={m['macro_f1']:.4f} "
                  f"macro_recall={m['macro_recall']:.4f} ece={m['ece']:.4f} (uncalibrated {m['ece_uncalibrated']:.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
