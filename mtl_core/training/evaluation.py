"""Evaluating a checkpoint on a data folder's dev or test split (the command is mtl_core/commands/evaluate.py).

Writes metrics.json, per-class reports and confusion-matrix PNGs to eval_<split>/ (eval_<split>_bf16/ in
bf16) beside the checkpoint's weights, or under runs/evaluate/ for the shipped checkpoint (default_output).
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import classification_report

from mtl_core.data.loading import load_task
from mtl_core.serving.predictor import Predictor
from mtl_core.settings import ROOT, repo_relative
from mtl_core.training.features import cached_features, store_logits
from mtl_core.training.metrics import expected_calibration_error, task_metrics, uncalibrated
from mtl_core.training.scope_evaluation import scope_report

log = logging.getLogger(__name__)


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


def class_probabilities(predictor: Predictor, texts: list[str], task: str, cache_dir: str | None) -> np.ndarray:
    """Calibrated class probabilities (N, C); with cache_dir, the frozen part's outputs come from the
    training feature cache (same numbers, computed once per split for a whole sweep of runs)."""
    if cache_dir is None:
        return predictor.run(texts, batch_size=64, show_progress=True).probs[task]
    model = predictor.model
    logits = store_logits(model, cached_features(model, texts, cache_dir, f"{task} features"), task)
    return model.probabilities(task, logits).numpy()


def default_output(checkpoint_dir: str | Path, split: str, precision: str) -> Path:
    """Where an evaluation writes unless told: `eval_<split>` (fp32, the reference) or `eval_<split>_<precision>`
    beside the checkpoint's weights; for the shipped checkpoint, whose eval_test/ is committed, the same name
    under runs/evaluate/ instead, so that reproducing never writes over a tracked file."""
    name = f"eval_{split}" if precision == "fp32" else f"eval_{split}_{precision}"
    checkpoint = Path(checkpoint_dir).resolve()
    if checkpoint.is_relative_to(ROOT / "assets"):
        return ROOT / "runs" / "evaluate" / checkpoint.relative_to(ROOT / "assets") / name
    return checkpoint / name


def evaluate_checkpoint(checkpoint_dir: str | Path, data_dir: str | Path, split: str = "test",
                        cache_dir: str | None = None, precision: str = "fp32", with_scope: bool = True,
                        backbone: str | None = None, out_dir: str | Path | None = None) -> dict:
    """Metrics of every head on `split`; with cache_dir, the frozen part's outputs come from the feature cache.
    When the data folder has oos/ (and with_scope), every out-of-scope scorer too (scope_evaluation.py).
    Writes metrics.json, per-class reports and confusion matrices to `out_dir` (default_output when None)."""
    predictor = Predictor.load(checkpoint_dir, backbone, precision=precision)
    used = predictor.model.encoder.precision  # bf16 falls back to fp32 on CPUs without it
    out_dir = Path(out_dir) if out_dir else default_output(checkpoint_dir, split, used)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict = {"checkpoint": repo_relative(checkpoint_dir), "split": split, "precision": used, "tasks": {}}
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
    if with_scope and (Path(data_dir) / "oos").is_dir():
        report["scope"] = scope_report(predictor, data_dir, split)
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {repo_relative(out_dir)}/", file=sys.stderr)
    return report
