"""Every out-of-scope scorer on a data folder with oos/ (CLINC150), for `python -m mtl_core evaluate`.

In scope: the test (or dev) sentences of the task with the detector (intent: definitions.SCOPED_TASK); out of
scope: CLINC150's official `oos` queries and its non-banking domains, reported apart. Each scorer is fitted on
that task's training sentences and gets its threshold by the shipped rule (accept scope.DEV_RECALL of its dev
sentences); the shipped detector's row uses the threshold stored in the checkpoint. Nothing here looks at
out-of-scope data to fit or choose anything.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mtl_core.data.loading import TaskData, load_task, read_rows
from mtl_core.model.heads import scaled_softmax
from mtl_core.serving.predictor import Predictor
from mtl_core.tasks import scope
from mtl_core.tasks.definitions import SCOPED_TASK

SHIPPED = "k-NN k=10, embedding"
Features = dict[str, np.ndarray]  # "embedding", "task_vector" (N, H), "logits" (N, C)


@torch.inference_mode()
def scope_features(predictor: Predictor, texts: list[str], head: str, batch_size: int = 64) -> Features:
    """The shown embedding, the heads' input vector and the head's logits of each sentence."""
    model, encoder = predictor.model, predictor.encoder
    n, h = len(texts), encoder.hidden_size
    out = {"embedding": np.zeros((n, h), np.float32), "task_vector": np.zeros((n, h), np.float32),
           "logits": np.zeros((n, model.config.head(head).num_labels), np.float32)}
    tokenized = encoder.tokenize_ids(texts)
    for idx, batch in encoder.progress_batches(tokenized, batch_size, "scope features", leave=False):
        result = model(**batch, tasks=[head])
        out["embedding"][idx] = result.embeddings.numpy()
        out["task_vector"][idx] = result.task_vector.numpy()
        out["logits"][idx] = result.logits[head].numpy()
    return out


def scorers(train: Features, train_labels: np.ndarray, temperature: float) -> dict[str, Callable[[Features], np.ndarray]]:
    """name -> scores of a feature set, each fitted on the training features only."""
    found: dict[str, Callable[[Features], np.ndarray]] = {
        "max softmax (calibrated)": lambda f: scope.msp(scaled_softmax(torch.from_numpy(f["logits"]), temperature).numpy()),
        "energy (T=1)": lambda f: scope.energy(f["logits"]),
    }
    for space, key in (("embedding", "embedding"), ("head features", "task_vector")):
        reference = train[key].astype(np.float16).astype(np.float32)  # as the shipped detector stores it
        for k in (1, 10):
            found[f"k-NN k={k}, {space}"] = lambda f, r=reference, k=k, key=key: scope.knn_similarity(f[key], r, k)
        means, precision = scope.fit_mahalanobis(train[key], train_labels)
        found[f"Mahalanobis, {space}"] = lambda f, m=means, p=precision, key=key: scope.mahalanobis_score(f[key], m, p)
    return found


def split_report(score: Callable[[Features], np.ndarray], threshold: float, inside: Features, labels: np.ndarray,
                 outside: Features, is_oos: np.ndarray) -> dict[str, float]:
    """The out-of-scope targets' figures (AUROC, false rejection, recall per group, intent accuracy with
    rejections) for one scorer on one split at `threshold`."""
    ins, outs = score(inside), score(outside)
    accepted, correct = ins >= threshold, inside["logits"].argmax(axis=1) == labels
    report = scope.ood_metrics(ins, outs, threshold)
    report.update(recall_oos=float((outs[is_oos] < threshold).mean()),
                  recall_domains=float((outs[~is_oos] < threshold).mean()),
                  accuracy_accepted=float(correct[accepted].mean()),
                  accuracy_rejections_as_errors=float((correct & accepted).mean()),
                  accuracy_no_rejection=float(correct.mean()), threshold=threshold)
    del report["oos_recall"]  # reported per group above
    return report


def scope_report(predictor: Predictor, data_dir: str | Path, split: str = "test") -> dict:
    """Every scorer's figures on `split` (in scope: SCOPED_TASK's data; out of scope: oos/<split>.csv)."""
    task = SCOPED_TASK.name
    in_scope: TaskData = load_task(data_dir, task)
    clinc = read_rows(Path(data_dir) / "oos" / f"{split}.csv")
    feats = {name: scope_features(predictor, texts, task) for name, texts in
             (("train", in_scope.train.texts), ("dev", in_scope.dev.texts), (split, getattr(in_scope, split).texts),
              ("clinc", [r["text"] for r in clinc]))}
    is_oos = np.array([r["label"] == "oos" for r in clinc])
    temperature = predictor.model.config.head(task).temperature
    detector = predictor.scopes.get(task)
    shipped = detector.config.threshold if detector else None
    rows = {}
    for name, score in scorers(feats["train"], in_scope.train.labels, temperature).items():
        threshold = scope.threshold_at_recall(score(feats["dev"]), scope.DEV_RECALL)
        if name == SHIPPED and shipped is not None:
            threshold = shipped
        rows[name] = split_report(score, threshold, feats[split], getattr(in_scope, split).labels, feats["clinc"], is_oos)
    return {"split": split, "shipped": SHIPPED if shipped is not None else None, "dev_recall": scope.DEV_RECALL,
            "n_in_scope": len(feats[split]["logits"]), "n_oos": int(is_oos.sum()), "n_domains": int((~is_oos).sum()),
            "scorers": rows}


def markdown_table(report: dict) -> str:
    lines = ["| scorer | AUROC | FPR@95 | false rejection | oos recall | domains recall | accuracy (accepted) "
             "| accuracy (rejections = errors) |", "|---|---|---|---|---|---|---|---|"]
    for name, m in report["scorers"].items():
        mark = " (shipped)" if name == report["shipped"] else ""
        lines.append(f"| {name}{mark} | {m['auroc']:.4f} | {m['fpr_at_95']:.2%} | {m['false_rejection']:.2%} | "
                     f"{m['recall_oos']:.2%} | {m['recall_domains']:.2%} | {m['accuracy_accepted']:.2%} | "
                     f"{m['accuracy_rejections_as_errors']:.2%} |")
    return "\n".join(lines)
