"""Faithfulness of the word explanations (ERASER, DeYoung et al., 2020) and what each method costs.

    python -m benchmarks.explain [--quick] [--sentences 500] [--data-dir DIR] [--out FILE] [--seed 0]

For N test sentences per task (intent: Banking77 test; sentiment: SemEval-2017 test; a seeded sample), the
label the shipped checkpoint predicts on the full sentence is explained by every method of
mtl_core.model.explain.METHODS, and by a seeded random ranking of the words as the floor to beat. For the top
k = 10, 20, 50% of the words by score (at least one word):

  comprehensiveness = p(label | x) - p(label | x without the top-k words)   higher: the words mattered
  sufficiency       = p(label | x) - p(label | only the top-k words)         lower: the words suffice

with calibrated probabilities, a word removed with all its pieces, [CLS] and [SEP] kept; `aopc` is the mean
over k. Occlusion scores the very operation these metrics perform (removing words), one at a time, so it has
a home advantage here; the gradient methods do not. Also: seconds per sentence (p50, p95) of each method,
one sentence per call, and integrated gradients' completeness error |sum of scores + rest - gap|.

Writes JSON (default benchmarks/explain_results.json; with --quick, runs/explain_quick.json) and prints a
Markdown table. --quick (5 sentences per task, well under a minute) checks that the benchmark runs; its
numbers mean nothing. Timings are only meaningful on an otherwise idle machine: the JSON records the load
average before and after.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from benchmarks.output import write_results
from mtl_core.data.loading import TASKS, load_task
from mtl_core.model.explain import IG_STEPS, METHODS, WordPieces, class_probabilities, explain, segment_words
from mtl_core.serving.predictor import Predictor
from mtl_core.settings import ROOT, Settings

PERCENTS = (10, 20, 50)
RANDOM = "random"  # the seeded random ranking every method must beat
QUICK_SENTENCES = 5


def top_count(num_words: int, percent: int) -> int:
    """How many words make the top `percent`: rounded, at least one."""
    return max(1, round(num_words * percent / 100))


def erasure_scores(predictor: Predictor, words: WordPieces, task: str, label: int,
                   rankings: dict[str, np.ndarray]) -> dict[str, dict[str, list[float]]]:
    """Comprehensiveness and sufficiency at each of PERCENTS for each ranking (word indices, most important
    first): method -> {"comprehensiveness": [per k], "sufficiency": [per k]}. One batch per sentence."""
    tops = [(name, ranking[:top_count(len(words.words), k)]) for name, ranking in rankings.items() for k in PERCENTS]
    variants = [words.ids] + [v for _, top in tops for v in (words.without(top), words.only(top))]
    probs = class_probabilities(predictor.model, predictor.encoder, variants, task)[:, label]  # (1 + 2 * R * K,)
    drops = (probs[0] - probs[1:]).reshape(len(rankings), len(PERCENTS), 2)  # (R * K * 2,) -> (R, K, 2)
    return {name: {"comprehensiveness": d[:, 0].tolist(), "sufficiency": d[:, 1].tolist()}
            for name, d in zip(rankings, drops)}


def measure_sentence(predictor: Predictor, text: str, task: str, rng: np.random.Generator) -> dict:
    """Every method's explanation of one sentence's predicted label, timed, and the erasure scores of its ranking."""
    seconds, rankings, completeness, label = {}, {}, None, 0
    for method in METHODS:
        started = time.perf_counter()
        result = explain(predictor.model, predictor.encoder, [text], task, method=method)[0]
        seconds[method] = time.perf_counter() - started
        rankings[method] = np.argsort(-np.asarray(result.scores), kind="stable")
        label = predictor.labels[task].index(result.label)
        if method == "integrated_gradients":
            completeness = abs(sum(result.scores) + result.rest - result.gap)
    words = segment_words(predictor.encoder, text)
    rankings[RANDOM] = rng.permutation(len(words.words))
    return {"seconds": seconds, "erasure": erasure_scores(predictor, words, task, label, rankings),
            "completeness": completeness}


def sample_sentences(data_dir: Path, task: str, n: int, seed: int) -> list[str]:
    test = load_task(data_dir, task).test
    idx = np.random.default_rng(seed).choice(len(test), size=min(n, len(test)), replace=False)
    return [test.texts[i] for i in idx]


def summarise(rows: list[dict]) -> dict:
    """Means per method and k, AOPC, timing percentiles and the completeness error, from measure_sentence rows."""
    summary: dict = defaultdict(dict)
    for method in [*METHODS, RANDOM]:
        for metric in ("comprehensiveness", "sufficiency"):
            values = np.array([r["erasure"][method][metric] for r in rows])  # (N, K)
            means = values.mean(axis=0)
            summary[method][metric] = {**{str(k): float(m) for k, m in zip(PERCENTS, means)},
                                       "aopc": float(means.mean())}
    for method in METHODS:
        summary[method]["ms_per_sentence"] = percentiles([1000 * r["seconds"][method] for r in rows], 50, 95)
    summary["integrated_gradients"]["completeness_error"] = percentiles([r["completeness"] for r in rows], 50, 100)
    return dict(summary)


def percentiles(values: list[float], *ps: int) -> dict[str, float]:
    """{"p50": ..., "p95": ...}; p100 is written "max"."""
    return {("max" if q == 100 else f"p{q}"): float(np.percentile(values, q)) for q in ps}


def markdown_table(results: dict) -> str:
    ks = [str(k) for k in PERCENTS]
    head = (["task", "method"] + [f"comp@{k}%" for k in ks] + ["comp AOPC"] + [f"suff@{k}%" for k in ks]
            + ["suff AOPC", "ms p50", "ms p95"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for task, summary in results["tasks"].items():
        for method, s in summary.items():
            comp, suff = s["comprehensiveness"], s["sufficiency"]
            ms = s.get("ms_per_sentence", {})
            cells = ([task, method] + [f"{metric[k]:.3f}" for metric in (comp, suff) for k in [*ks, "aopc"]]
                     + [f"{ms[p]:.0f}" if ms else "-" for p in ("p50", "p95")])
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict:
    predictor = Predictor.load()
    results = {"quick": args.quick, "command": " ".join(["python", "-m", "benchmarks.explain", *sys.argv[1:]]),
               "sentences_per_task": args.sentences, "seed": args.seed, "percents": list(PERCENTS),
               "ig_steps": IG_STEPS, "torch_threads": torch.get_num_threads(),
               "load_average_before": os.getloadavg()[0], "tasks": {}}
    rng = np.random.default_rng(args.seed)
    explain(predictor.model, predictor.encoder, ["warm up"], TASKS[0])  # first-call costs out of the timings
    for task in TASKS:
        texts = sample_sentences(args.data_dir, task, args.sentences, args.seed)
        texts = [t for t in texts if segment_words(predictor.encoder, t).words]
        rows = [measure_sentence(predictor, t, task, rng) for t in tqdm(texts, desc=f"explaining {task}", unit="sentence")]
        results["tasks"][task] = summarise(rows)
    results["load_average_after"] = os.getloadavg()[0]  # timings mean little unless both are well under the cores
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SENTENCES} sentences per task: checks it runs")
    parser.add_argument("--sentences", type=int, default=500, help="test sentences per task (default 500)")
    parser.add_argument("--data-dir", type=Path, default=Settings.from_env().training_data_dir,
                        help="default: $MTL_DATA_DIR, else data/ in the checkout")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file (default: benchmarks/explain_results.json; with --quick: "
                             "runs/explain_quick.json)")
    parser.add_argument("--seed", type=int, default=0, help="sentence sample and random ranking")
    args = parser.parse_args(argv)
    if args.sentences < 1:
        parser.error(f"--sentences must be >= 1, got {args.sentences}")
    if args.quick:
        args.sentences = min(args.sentences, QUICK_SENTENCES)
    args.out = args.out or ROOT / ("runs/explain_quick.json" if args.quick else "benchmarks/explain_results.json")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results = run(args)
    write_results(args.out, results, markdown_table(results))


if __name__ == "__main__":
    main()
