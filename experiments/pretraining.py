"""What pre-training buys, and when the entirely frozen network is enough (Step 3: freezing, transfer).

    python -m experiments.pretraining [--quick]

On both tasks' official splits, each method chooses its one hyper-parameter on dev and reads test once:

- TF-IDF (word 1-2-grams) + logistic regression: no pre-training at all;
- random weights: all-MiniLM-L6-v2's architecture and tokenizer, randomly initialised and frozen, mean
  pooled, + a linear probe: what the architecture alone gives;
- the entirely frozen pre-trained network (= the embedding this app shows): k-NN (cosine) and a linear
  probe (logistic regression) on it;
- the fine-tuned model: the shipped checkpoint's committed test metrics (assets/checkpoint/eval_test).

Writes experiments/results/pretraining.json (with --quick: 300 rows per split, nothing written).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from transformers import AutoModel

from experiments import add_results_argument, save_result
from mtl_core.data.loading import TASKS, TaskData, load_task
from mtl_core.model.encoder import SentenceEncoder
from mtl_core.settings import DEFAULT_CHECKPOINT, Settings
from mtl_core.training.metrics import PRIMARY_METRIC, task_metrics

C_GRID = [0.1, 1.0, 10.0, 100.0]
K_GRID = [1, 5, 10, 25, 50]


def best_on_dev(task: str, make, grid: list, features: dict[str, object], data: TaskData) -> dict:
    """Fit one model per grid value on train, keep the best on dev, then score it once on test."""
    print(f"{task}: {make.__name__} over {grid} ...", file=sys.stderr, flush=True)
    started, scores, models = time.perf_counter(), {}, {}
    for value in grid:
        models[value] = make(value).fit(features["train"], data.train.labels)
        scores[value] = task_metrics(data.dev.labels, models[value].predict(features["dev"]))[PRIMARY_METRIC[task]]
    chosen = max(scores, key=scores.get)
    test = task_metrics(data.test.labels, models[chosen].predict(features["test"]))
    return {"chosen": chosen, "dev_by_value": scores, "dev": scores[chosen], "test": test[PRIMARY_METRIC[task]],
            "seconds": round(time.perf_counter() - started, 1)}


def logistic(c: float) -> LogisticRegression:
    return LogisticRegression(C=c, max_iter=2000)


def embeddings(encoder: SentenceEncoder, data: TaskData) -> dict[str, np.ndarray]:
    return {split: encoder.encode(getattr(data, split).texts, batch_size=64, show_progress=True)
            for split in ("train", "dev", "test")}


def random_encoder(pretrained: SentenceEncoder, seed: int = 0) -> SentenceEncoder:
    """`pretrained`'s architecture and tokenizer with freshly initialised weights."""
    torch.manual_seed(seed)
    encoder = SentenceEncoder(AutoModel.from_config(pretrained.bert.config), pretrained.tokenizer, name="random")
    return encoder.eval().requires_grad_(False)


def run_task(task: str, data: TaskData, pretrained: SentenceEncoder, random: SentenceEncoder) -> dict:
    tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(data.train.texts)
    words = {split: tfidf.transform(getattr(data, split).texts) for split in ("train", "dev", "test")}
    frozen, untrained = embeddings(pretrained, data), embeddings(random, data)

    def knn(k: int) -> KNeighborsClassifier:
        return KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute")

    return {"tfidf_logistic": best_on_dev(task, logistic, C_GRID, words, data),
            "random_weights_probe": best_on_dev(task, logistic, C_GRID, untrained, data),
            "frozen_knn": best_on_dev(task, knn, K_GRID, frozen, data),
            "frozen_probe": best_on_dev(task, logistic, C_GRID, frozen, data)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="300 rows per split, print only")
    add_results_argument(p)
    args = p.parse_args(argv)
    data_dir = Settings.from_env().training_data_dir
    pretrained = SentenceEncoder.load()
    random = random_encoder(pretrained)
    fine_tuned = json.loads((DEFAULT_CHECKPOINT / "eval_test" / "metrics.json").read_text())["tasks"]
    report = {"command": "python -m experiments.pretraining", "metric": PRIMARY_METRIC, "tasks": {}}
    for task in TASKS:
        data = load_task(data_dir, task)
        if args.quick:
            for split in ("train", "dev", "test"):
                setattr(data, split, getattr(data, split).subset(np.arange(min(300, len(getattr(data, split))))))
        results = run_task(task, data, pretrained, random)
        results["fine_tuned_shipped"] = {"test": fine_tuned[task][PRIMARY_METRIC[task]]}
        report["tasks"][task] = results
    if args.quick:
        print(json.dumps(report, indent=2))
    else:
        save_result("pretraining", report, args.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
