"""A task from a few examples (mtl_core/tasks/fewshot.py), measured on the standard few-shot intent splits.

    python -m benchmarks.fewshot [--source DIR] [--data-dir DIR] [--out FILE] [--quick]

--source: a clone of github.com/jianguoz/Few-Shot-Intent-Detection (default originals/Few-Shot-Intent-Detection;
`git clone https://github.com/jianguoz/Few-Shot-Intent-Detection originals/Few-Shot-Intent-Detection`), whose
Datasets/{BANKING77,CLINC150}/{train_5,train_10,valid,test}/{seq.in,label} and Datasets/CLINC150/oos/{valid,test}
are the splits of Zhang et al. (2021, CPFT) and the papers that compare with it.

1. Accuracy: for BANKING77 and CLINC150 at 5 and 10 examples per intent, every candidate head fitted on the
   split's training examples (plus the label names, as fit_task does) on the frozen, published
   all-MiniLM-L6-v2 embedding (never the task layers: they were trained on the full Banking77 training set),
   scored on `valid` (to choose) and `test` (to report). "chosen on valid" is the candidate best on valid;
   "as the app builds it" is fit_task itself, choosing by cross-validation on the examples alone.
2. Out of scope: a task built by fit_task from CLINC150 10-shot; its scope scores of CLINC150's in-scope test
   sentences against its `oos` test queries: AUROC, out-of-scope recall at <= 5% false rejection (the threshold
   set on these test scores: an oracle, for comparison) and at the task's own threshold (from its examples);
   on valid (in scope vs oos/valid), what chose the score: the AUROC of k-NN cosine at each k, of the head's
   top probability and of the cosine to the nearest label centroid (the task's score, best on valid).
3. Time (the app's precision, MTL_PRECISION else auto): building a 1,500-example task (CLINC150 10-shot,
   embedding included, nothing cached), and one Analyse (model pass, predictions, table, map) with and
   without a third task on the same new sentences (no cache, so both run the model), which first
   alternating, median of the repeats.

Writes JSON (default benchmarks/fewshot_results.json; --quick: runs/fewshot_quick.json) and prints Markdown.
--quick (a few intents of each split, one repeat) checks that the benchmark runs; its numbers mean nothing.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

from benchmarks.output import write_results
from benchmarks.run import timed
from mtl_core.data.loading import read_texts
from mtl_core.model.encoder import SentenceEncoder
from mtl_core.serving.analysis import Analysis
from mtl_core.serving.maps import map_view
from mtl_core.serving.predictor import Predictor
from mtl_core.serving.reference import ReferenceBuilder, load_reference_set
from mtl_core.settings import ROOT, Settings
from mtl_core.tasks import fewshot
from mtl_core.tasks.scope import knn_similarity, ood_metrics
from ui.figures import map_figure

SPLITS = {"BANKING77": ("train_5", "train_10"), "CLINC150": ("train_5", "train_10")}
PUBLISHED = {  # CPFT (Zhang et al., EMNLP 2021), as listed by its first author's repository README
    ("BANKING77", "train_5"): 80.86, ("BANKING77", "train_10"): 87.20,
    ("CLINC150", "train_5"): 92.34, ("CLINC150", "train_10"): 94.18}
TARGETS = {("BANKING77", "train_5"): 80.9, ("BANKING77", "train_10"): 87.2, ("CLINC150", "train_10"): 92.0}
SCOPE_KS = (1, 3, 5, 10)
ANALYSE_SIZES = {10: 9, 300: 7, 1000: 5}  # sentences per Analyse -> repeats (each with and without)
QUICK_INTENTS = 6


def read_split(source: Path, dataset: str, split: str, keep: set[str] | None = None) -> tuple[list[str], list[str]]:
    folder = source / "Datasets" / dataset / split
    texts = (folder / "seq.in").read_text(encoding="utf-8").splitlines()
    labels = (folder / "label").read_text(encoding="utf-8").splitlines()
    if len(texts) != len(labels):
        raise SystemExit(f"{folder}: {len(texts)} texts but {len(labels)} labels")
    pairs = [(t.strip(), y.strip()) for t, y in zip(texts, labels) if keep is None or y.strip() in keep]
    return [t for t, _ in pairs], [y for _, y in pairs]


class CachedEmbedder:
    """The published embedding of every text, computed once (fp32: the reference)."""

    def __init__(self, encoder: SentenceEncoder):
        self.encoder, self.vectors = encoder, {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self.vectors))
        if todo:
            self.vectors.update(zip(todo, self.encoder.encode(todo, batch_size=64)))
        return np.stack([self.vectors[t] for t in texts])


def accuracy(head, x: np.ndarray, labels: list[str], names: list[str]) -> float:
    predicted = fewshot.head_logits(head, torch.from_numpy(x)).argmax(1).numpy()
    return float(np.mean([names[p] == y for p, y in zip(predicted, labels)]))


def measure_split(embed: CachedEmbedder, source: Path, dataset: str, split: str, keep: set[str] | None) -> dict:
    texts, labels = read_split(source, dataset, split, keep)
    names = list(dict.fromkeys(labels))
    y = torch.tensor([names.index(label) for label in labels])
    data = fewshot.Examples(torch.from_numpy(embed(texts)), y, torch.from_numpy(embed([fewshot.label_text(n) for n in names])))
    evaluation = {part: read_split(source, dataset, part, keep) for part in ("valid", "test")}
    vectors = {part: embed(t) for part, (t, _) in evaluation.items()}
    methods = {}
    for candidate in fewshot.candidates():
        _, head = fewshot.build_head(candidate, "bench", names, *data.training_set())
        methods[candidate.name] = {part: 100 * accuracy(head, vectors[part], evaluation[part][1], names)
                                   for part in evaluation}
    chosen = max(methods, key=lambda m: methods[m]["valid"])
    task = fewshot.fit_task("bench", texts, labels, embed)
    app = {part: 100 * accuracy(task.head, vectors[part], evaluation[part][1], names) for part in evaluation}
    return {"examples": len(texts), "labels": len(names), "methods": methods, "chosen_on_valid": chosen,
            "chosen_test": methods[chosen]["test"], "app": {"method": task.report.method, **app,
                                                            "cv_accuracy": 100 * task.report.cv_accuracy}}


def measure_scope(embed: CachedEmbedder, source: Path, keep: set[str] | None) -> dict:
    """Out of scope for a task built from CLINC150 10-shot: the score chosen on valid, figures on test."""
    texts, labels = read_split(source, "CLINC150", "train_10", keep)
    task = fewshot.fit_task("clinc", texts, labels, embed)
    scorers = {**{f"k-NN k={k}": lambda e, k=k: knn_similarity(e, task.scope.reference, k) for k in SCOPE_KS},
               "top probability": lambda e: task.probabilities(e).max(axis=1),
               "nearest label centroid (the task's)": task.scope.scores}

    def vectors(split: str, chosen: set[str] | None) -> np.ndarray:
        return embed(read_split(source, "CLINC150", split, chosen)[0])

    valid_in, valid_oos = vectors("valid", keep), vectors("oos/valid", None)
    valid = {name: ood_metrics(score(valid_in), score(valid_oos))["auroc"] for name, score in scorers.items()}
    found = ood_metrics(task.scope.scores(vectors("test", keep)), task.scope.scores(vectors("oos/test", None)),
                        task.scope.config.threshold)
    return {"method": task.scope.config.method, "threshold": task.scope.config.threshold, "valid_auroc": valid,
            "auroc": found["auroc"], "oos_recall_at_5pct_false_rejection": 1 - found["fpr_at_95"],
            "own_threshold": {"false_rejection": found["false_rejection"], "oos_recall": found["oos_recall"]}}


def measure_time(source: Path, data_dir: Path, precision: str, quick: bool) -> dict:
    """Build time of a 1,500-example task and the cost of a third task per Analyse, in the app's precision."""
    predictor = Predictor.load(precision=precision)
    texts, labels = read_split(source, "CLINC150", "train_10", quick_labels(source, "CLINC150") if quick else None)
    predictor.run(["warm up", "the first passes pay for kernel selection"] * 4)
    builds = [timed(predictor.example_task, "clinc", texts, labels) for _ in range(1 if quick else 3)]
    task = builds[-1][1]
    builder = ReferenceBuilder(lambda: load_reference_set(data_dir), predictor.embed).start()
    builder.wait(600)
    pool = read_texts(data_dir / "intent" / "test.csv") + read_texts(data_dir / "sentiment" / "test.csv")
    sizes = {10: 1} if quick else ANALYSE_SIZES
    analyse, start = {}, 0
    for size, repeats in sizes.items():
        seconds = {"without": [], "with": []}
        for r in range(repeats):  # both on the same sentences (no cache: each runs the model), in turn first
            sentences = pool[start:start + size]
            start += size
            for which in ("without", "with") if r % 2 == 0 else ("with", "without"):
                seconds[which].append(timed(one_analyse, predictor, builder, sentences,
                                            task if which == "with" else None)[0])
        medians = {k: statistics.median(v) for k, v in seconds.items()}
        analyse[size] = {**{f"{k}_s": v for k, v in medians.items()}, "ratio": medians["with"] / medians["without"],
                         "repeats": repeats}
    return {"precision": predictor.encoder.precision, "build_s": [b[0] for b in builds],
            "build_median_s": statistics.median(b[0] for b in builds), "build_examples": len(texts),
            "analyse": analyse}


def one_analyse(predictor: Predictor, builder: ReferenceBuilder, sentences: list[str], task) -> None:
    """What an Analyse computes on the server: the model pass, predictions, the table and the map."""
    analysis = Analysis.run(predictor, sentences, task)
    analysis.table()
    map_figure(analysis, map_view(analysis.embeddings, 2, builder, True), "intent", 2)


def run(args: argparse.Namespace) -> dict:
    if not (args.source / "Datasets").is_dir():
        raise SystemExit(f"{args.source} has no Datasets/ folder: clone github.com/jianguoz/Few-Shot-Intent-Detection "
                         "there, or pass --source")
    embed = CachedEmbedder(SentenceEncoder.load())
    results = {"quick": args.quick, "command": " ".join(["python", "-m", "benchmarks.fewshot", *sys.argv[1:]]),
               "torch_threads": torch.get_num_threads(), "load_average_before": os.getloadavg()[0],
               "accuracy": {}, "published_cpft": {f"{d} {s}": v for (d, s), v in PUBLISHED.items()}}
    for dataset, splits in SPLITS.items():
        keep = quick_labels(args.source, dataset) if args.quick else None
        for split in splits:
            results["accuracy"][f"{dataset} {split}"] = measure_split(embed, args.source, dataset, split, keep)
    results["scope"] = measure_scope(embed, args.source, quick_labels(args.source, "CLINC150") if args.quick else None)
    results["time"] = measure_time(args.source, args.data_dir, args.precision, args.quick)
    results["load_average_after"] = os.getloadavg()[0]
    return results


def quick_labels(source: Path, dataset: str) -> set[str]:
    return set(sorted(set(read_split(source, dataset, "train_5")[1]))[:QUICK_INTENTS])


def markdown(results: dict) -> str:
    methods = [c.name for c in fewshot.candidates()]
    lines = ["| split | " + " | ".join(methods) + " | chosen on valid | as the app builds it | CPFT | target |",
             "|---|" + "---|" * (len(methods) + 4)]
    for name, found in results["accuracy"].items():
        dataset, split = name.split()
        target = TARGETS.get((dataset, split))
        cells = [f"{found['methods'][m]['test']:.1f}" for m in methods]
        lines.append(f"| {dataset} {split.replace('train_', '')}-shot | " + " | ".join(cells) +
                     f" | {found['chosen_test']:.1f} ({found['chosen_on_valid']}) | {found['app']['test']:.1f} "
                     f"({found['app']['method']}) | {PUBLISHED[(dataset, split)]:.2f} | "
                     f"{'-' if target is None else f'{target:.1f}'} |")
    scope, timing = results["scope"], results["time"]
    lines += ["", f"Out of scope (CLINC150 10-shot task; {scope['method']}): AUROC {scope['auroc']:.3f}; oos recall "
              f"{100 * scope['oos_recall_at_5pct_false_rejection']:.1f}% at 5% false rejection (threshold set on test); "
              f"with the task's own threshold {scope['threshold']:.3f}: false rejection "
              f"{100 * scope['own_threshold']['false_rejection']:.1f}%, "
              f"oos recall {100 * scope['own_threshold']['oos_recall']:.1f}%. "
              "Valid AUROC: " + ", ".join(f"{k} {v:.3f}" for k, v in scope["valid_auroc"].items()),
              "", f"Time ({timing['precision']}): a {timing['build_examples']:,}-example task builds in "
              f"{timing['build_median_s']:.1f} s (median of {len(timing['build_s'])}); one Analyse with / without a "
              "third task: " + "; ".join(f"{n} sentences {a['with_s']:.3f} / {a['without_s']:.3f} s (x{a['ratio']:.3f})"
                                         for n, a in timing["analyse"].items())]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fewshot", description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT / "originals" / "Few-Shot-Intent-Detection",
                        help="a clone of jianguoz/Few-Shot-Intent-Detection (default originals/Few-Shot-Intent-Detection)")
    parser.add_argument("--data-dir", type=Path, default=Settings.from_env().training_data_dir,
                        help="the project's data (sentences for the Analyse timings; default $MTL_DATA_DIR, "
                             "else data/ in the checkout)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_INTENTS} intents per split, one repeat: checks it runs")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default benchmarks/fewshot_results.json; "
                                                               "with --quick runs/fewshot_quick.json)")
    args = parser.parse_args(argv)
    args.precision = Settings.from_env(default_precision="auto").precision  # the app's
    args.out = args.out or ROOT / ("runs/fewshot_quick.json" if args.quick else "benchmarks/fewshot_results.json")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results = run(args)
    write_results(args.out, results, markdown(results))


if __name__ == "__main__":
    main()
