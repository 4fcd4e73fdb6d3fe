"""Metrics and calibration, shared by training (model choice on dev) and evaluation (test reports).

Intent: accuracy (official Banking77 metric) and macro-F1. Sentiment: macro-averaged recall
(official SemEval-2017 4A / TweetEval metric), accuracy and macro-F1. All via scikit-learn.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score, recall_score

from mtl_core.model.heads import scaled_softmax
from mtl_core.tasks.definitions import BUILTIN_TASKS

PRIMARY_METRIC = {task.name: task.primary_metric for task in BUILTIN_TASKS}  # task name -> key of task_metrics


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


def calibration(logits: torch.Tensor, labels: np.ndarray) -> dict[str, float]:
    """Fit a temperature on (dev) logits; report it with the ECE before and after scaling."""
    temperature = fit_temperature(logits, torch.as_tensor(labels))
    return {"temperature": temperature,
            "dev_ece_before": expected_calibration_error(scaled_softmax(logits).numpy(), labels),
            "dev_ece_after": expected_calibration_error(scaled_softmax(logits, temperature).numpy(), labels)}
