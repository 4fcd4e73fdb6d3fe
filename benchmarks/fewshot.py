"""A task from a few examples (mtl_core/tasks/fewshot.py), measured on the standard few-shot intent splits.

    python -m benchmarks.fewshot [--source DIR] [--wikitext DIR] [--data-dir DIR] [--out FILE] [--quick]

--wikitext: a folder with WikiText-2's valid.txt and test.txt (default originals/wikitext-2; the copy in
github.com/pytorch/examples, word_language_model/data/wikitext-2/, CC BY-SA 3.0).
--source: a clone of github.com/jianguoz/Few-Shot-Intent-Detection (default originals/Few-Shot-Intent-Detection;
`git clone https://github.com/jianguoz/Few-Shot-Intent-Detection originals/Few-Shot-Intent-Detection`), whose
Datasets/{BANKING77,CLINC150}/{train_5,train_10,valid,test}/{seq.in,label} and Datasets/CLINC150/oos/{valid,test}
are the splits of Zhang et al. (2021, CPFT) and the papers that compare with it.

1. Accuracy: for BANKING77 and CLINC150 at 5 and 10 examples per intent, every candidate head fitted on the
   split's training examples (plus the label names, as fit_task does) on the frozen, published
   all-MiniLM-L6-v2 embedding (never the task layers: they were trained on the full Banking77 training set),
   scored on `valid` (to choose) and `test` (to report). "chosen on valid" is the candidate best on valid;
   "as the app builds it" is fit_task itself, choosing by cross-validation on the examples alone; "improved" is
   fit_task with its own top layers trained first (tasks/improve.py), once per seed of SEEDS (median, min, max).
2. Out of scope: a task built by fit_task from CLINC150 10-shot; its scope scores of CLINC150's in-scope test
   sentences against its `oos` test queries: AUROC, out-of-scope recall at <= 5% false rejection (the threshold
   set on these test scores: an oracle, for comparison) and at the task's own threshold (from its examples);
   on valid (in scope vs oos/valid), what chose the score: the AUROC of k-NN cosine at each k, of the head's
   top probability and of the cosine to the nearest label centroid (the task's score, best on valid). The same
   for the improved task (seed 0). General text: the share of tweets (SemEval-2017 test, the data folder's
   sentiment/test.csv) and of encyclopedia sentences (WikiText-2 test, --wikitext) that the BANKING77 and
   CLINC150 10-shot tasks, plain and improved, flag as out of scope, beside their in-scope test rejections;
   the dev halves (sentiment/dev.csv, WikiText-2 valid) are what chose the threshold rule.
3. Time (the app's precision, MTL_PRECISION else auto): building a 1,500-example task (CLINC150 10-shot,
   embedding included, nothing cached) and improving a 770-example one (BANKING77 10-shot); one Analyse (model
   pass, predictions, table, map) without a third task, with one and with an improved one, and the model pass
   alone without and with the improved task, on the same new sentences (no cache, so each runs the model),
   which first rotating, median of the repeats.

Writes JSON (default benchmarks/fewshot_results.json; --quick: runs/fewshot_quick.json) and prints Markdown.
--quick (a few intents of each split, one repeat) checks that the benchmark runs; its numbers mean nothing.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from dataclasses import asdict, dataclass
from functools import partial
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
from mtl_core.tasks import fewshot, improve
from mtl_core.tasks.scope import knn_similarity, ood_metrics
from ui.figures import map_figure

SPLITS = {"BANKING77": ("train_5", "train_10"), "CLINC150": ("train_5", "train_10")}
PUBLISHED = {  # CPFT (Zhang et al., EMNLP 2021), as listed by its first author's repository README
    ("BANKING77", "train_5"): 80.86, ("BANKING77", "train_10"): 87.20,
    ("CLINC150", "train_5"): 92.34, ("CLINC150", "train_10"): 94.18}
TARGETS = {("BANKING77", "train_5"): 83.0, ("BANKING77", "train_10"): 88.0, ("CLINC150", "train_10"): 93.0}
SCOPE_KS = (1, 3, 5, 10)
ANALYSE_SIZES = {10: 9, 300: 7, 1000: 5}  # sentences per Analyse -> repeats (each with and without)
QUICK_INTENTS = 6
QUICK_IMPROVE = improve.ImproveSettings(steps=4)  # --quick: checks that improving runs, nothing more
QUICK_GENERAL_TEXT = 40
SEEDS = (0, 1, 2)


def read_split(source: Path, dataset: str, split: str, keep: set[str] | None = None) -> tuple[list[str], list[str]]:
    folder = source / "Datasets" / dataset / split
    texts = (folder / "seq.in").read_text(encoding="utf-8").splitlines()
    labels = (folder / "label").read_text(encoding="utf-8").splitlines()
    if len(texts) != len(labels):
        raise SystemExit(f"{folder}: {len(texts)} texts but {len(labels)} labels")
    pairs = [(t.strip(), y.strip()) for t, y in zip(texts, labels) if keep is None or y.strip() in keep]
    return [t for t, _ in pairs], [y for _, y in pairs]


class CachedEmbedder:
    """What a task reads of every text, computed once: the published embedding (fp32: the reference), or with
    `layers` an improved task's own vectors."""

    def __init__(self, encoder: SentenceEncoder, layers: torch.nn.ModuleList | None = None):
        self.encoder, self.vectors = encoder, {}
        self.encode = improve.layer_embedder(encoder, layers) if layers is not None else partial(encoder.encode, batch_size=64)

    def __call__(self, texts: list[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self.vectors))
        if todo:
            self.vectors.update(zip(todo, self.encode(todo)))
        return np.stack([self.vectors[t] for t in texts])


@dataclass
class Built:
    """A split's task as the app builds it, plain and improved (seed 0), each with what it reads."""

    plain: fewshot.ExampleTask
    improved: fewshot.ExampleTask
    plain_vectors: CachedEmbedder
    improved_vectors: CachedEmbedder


def accuracy(head, x: np.ndarray, labels: list[str], names: list[str]) -> float:
    predicted = fewshot.head_logits(head, torch.from_numpy(x)).argmax(1).numpy()
    return float(np.mean([names[p] == y for p, y in zip(predicted, labels)]))


def measure_split(embed: CachedEmbedder, source: Path, dataset: str, split: str, keep: set[str] | None,
                  seeds: tuple[int, ...], settings: improve.ImproveSettings) -> tuple[dict, Built]:
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
    improved, first = measure_improved(embed, texts, labels, evaluation, seeds, settings)
    return {"examples": len(texts), "labels": len(names), "methods": methods, "chosen_on_valid": chosen,
            "chosen_test": methods[chosen]["test"], "app": {"method": task.report.method, **app,
                                                            "cv_accuracy": 100 * task.report.cv_accuracy},
            "improved": improved}, Built(task, first[0], embed, first[1])


def measure_improved(embed: CachedEmbedder, texts: list[str], labels: list[str], evaluation: dict,
                     seeds: tuple[int, ...], settings: improve.ImproveSettings
                     ) -> tuple[dict, tuple[fewshot.ExampleTask, CachedEmbedder]]:
    """fit_task with its own layers trained first, once per seed: accuracy on valid and test, build time (fp32,
    the reference encoder). Also the first seed's task and its cached vectors."""
    names, runs, first = list(dict.fromkeys(labels)), [], None
    for seed in seeds:
        seconds, task = timed(fewshot.fit_task, "bench", texts, labels, embed, seed=seed,
                              improver=improve.Improver(embed.encoder, settings))
        vectors = CachedEmbedder(embed.encoder, task.head.layers)
        runs.append({"seed": seed, "build_s": seconds, "method": task.report.method,
                     "cv_accuracy": 100 * task.report.cv_accuracy,
                     **{part: 100 * accuracy(task.head, vectors(t), y, names) for part, (t, y) in evaluation.items()}})
        first = first or (task, vectors)
    summary = {f"{part}_{f.__name__}": f(r[part] for r in runs) for part in evaluation for f in (statistics.median, min, max)}
    return {"steps": settings.steps, "layers": settings.layers, **summary, "runs": runs}, first


def measure_scope(source: Path, keep: set[str] | None, built: Built) -> dict:
    """Out of scope for the task built from CLINC150 10-shot: the score chosen on valid, figures on test; the
    same figures for the improved task."""
    task, embed = built.plain, built.plain_vectors
    scorers = {**{f"k-NN k={k}": lambda e, k=k: knn_similarity(e, task.scope.reference, k) for k in SCOPE_KS},
               "top probability": lambda e: task.probabilities(e).max(axis=1),
               "nearest label centroid (the task's)": task.scope.scores}

    def vectors(split: str, chosen: set[str] | None, reads: CachedEmbedder = embed) -> np.ndarray:
        return reads(read_split(source, "CLINC150", split, chosen)[0])

    valid_in, valid_oos = vectors("valid", keep), vectors("oos/valid", None)
    valid = {name: ood_metrics(score(valid_in), score(valid_oos))["auroc"] for name, score in scorers.items()}
    return {"method": task.scope.config.method, "valid_auroc": valid,
            **scope_figures(task, vectors("test", keep), vectors("oos/test", None)),
            "improved": scope_figures(built.improved, vectors("test", keep, built.improved_vectors),
                                      vectors("oos/test", None, built.improved_vectors))}


def scope_figures(task: fewshot.ExampleTask, in_scope: np.ndarray, out_of_scope: np.ndarray) -> dict:
    """AUROC of CLINC150's in-scope test sentences against its oos test queries (what the task reads of each),
    oos recall at 5% false rejection (threshold set on test: an oracle), and both rates at the task's own threshold."""
    found = ood_metrics(task.scope.scores(in_scope), task.scope.scores(out_of_scope), task.scope.config.threshold)
    return {"threshold": task.scope.config.threshold, "auroc": found["auroc"],
            "oos_recall_at_5pct_false_rejection": 1 - found["fpr_at_95"],
            "own_threshold": {"false_rejection": found["false_rejection"], "oos_recall": found["oos_recall"]}}


GENERAL_TEXT_SIZE = 2000  # sentences of each general-text set (the first of the file)


def wiki_sentences(path: Path, limit: int) -> list[str]:
    """WikiText-2's sentences, its tokenisation undone: no headings, none with an <unk>, 6-40 words."""
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("="):
            continue
        for sentence in line.split(" . "):
            words = sentence.split()
            if "<unk>" not in sentence and 6 <= len(words) <= 40:
                text = " ".join(words).replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".")
                for mark in (",", ";", ":", "'s", ")", "n't"):
                    text = text.replace(f" {mark}", mark)
                found.append(text.replace("( ", "(").rstrip(" .") + ".")
    return found[:limit]


def general_text(data_dir: Path, wikitext: Path, part: str, limit: int) -> dict[str, list[str]]:
    """part "dev" (what chose the threshold rule) or "test" (what is reported)."""
    tweets = read_texts(data_dir / "sentiment" / f"{part}.csv")[:limit]
    return {"tweets": tweets, "encyclopedia": wiki_sentences(wikitext / ("valid.txt" if part == "dev" else "test.txt"), limit)}


def measure_general_text(source: Path, data_dir: Path, wikitext: Path, built: dict[str, Built], keep: dict,
                         limit: int) -> dict:
    """For the 10-shot tasks, plain and improved: in-scope sentences rejected (valid, test) and general text
    flagged out of scope (dev, test) at the task's own threshold."""
    texts = {part: general_text(data_dir, wikitext, part, limit) for part in ("dev", "test")}
    found = {}
    for dataset in ("BANKING77", "CLINC150"):
        pair = built[f"{dataset} train_10"]
        for kind, task, reads in (("plain", pair.plain, pair.plain_vectors),
                                  ("improved", pair.improved, pair.improved_vectors)):
            rejected = {f"in_scope_{part}_rejected": rejected_share(task, reads(
                read_split(source, dataset, part, keep.get(dataset))[0])) for part in ("valid", "test")}
            flagged = {f"{name}_{part}_flagged": rejected_share(task, reads(sentences))
                       for part, sets in texts.items() for name, sentences in sets.items()}
            found[f"{dataset} {kind}"] = {"threshold": task.scope.config.threshold, **rejected, **flagged}
    return {"sentences_per_set": {name: len(t) for name, t in texts["test"].items()}, "tasks": found}


def rejected_share(task: fewshot.ExampleTask, vectors: np.ndarray) -> float:
    """The share of sentences (what the task reads of each) below the task's scope threshold: out of scope."""
    return float(np.mean(task.scope.scores(vectors) < task.scope.config.threshold))


def measure_time(source: Path, data_dir: Path, precision: str, quick: bool, settings: improve.ImproveSettings) -> dict:
    """In the app's precision: build time of a 1,500-example task and of an improved 770-example one, and the
    cost of a third task, plain or improved, per Analyse and per model pass."""
    predictor = Predictor.load(precision=precision)
    texts, labels = read_split(source, "CLINC150", "train_10", quick_labels(source, "CLINC150") if quick else None)
    predictor.run(["warm up", "the first passes pay for kernel selection"] * 4)
    repeats = 1 if quick else 3
    builds = [timed(predictor.example_task, "clinc", texts, labels) for _ in range(repeats)]
    task = builds[-1][1]
    b_texts, b_labels = read_split(source, "BANKING77", "train_10", quick_labels(source, "BANKING77") if quick else None)
    improved_builds = [timed(predictor.example_task, "banking", b_texts, b_labels, seed=seed, improve=settings)
                       for seed in range(repeats)]
    builder = ReferenceBuilder(lambda: load_reference_set(data_dir), predictor.embed).start()
    builder.wait(600)
    pool = read_texts(data_dir / "intent" / "test.csv") + read_texts(data_dir / "sentiment" / "test.csv")
    arms = {"without": lambda sentences: one_analyse(predictor, builder, sentences, None),
            "with": lambda sentences: one_analyse(predictor, builder, sentences, task),
            "with improved": lambda sentences: one_analyse(predictor, builder, sentences, improved_builds[0][1]),
            "pass without": lambda sentences: predictor.run(sentences),
            "pass with improved": lambda sentences: predictor.run(sentences, extra=improved_builds[0][1])}
    analyse, start = {}, 0
    for size, repeats_of_size in ({10: 1} if quick else ANALYSE_SIZES).items():
        seconds = {arm: [] for arm in arms}
        for r in range(repeats_of_size):  # every arm on the same sentences (no cache: each runs the model)
            sentences = pool[start:start + size]
            start += size
            names = list(arms)
            for arm in names[r % len(names):] + names[:r % len(names)]:  # which runs first rotates
                seconds[arm].append(timed(arms[arm], sentences)[0])
        medians = {arm: statistics.median(v) for arm, v in seconds.items()}
        analyse[size] = {**{f"{arm.replace(' ', '_')}_s": v for arm, v in medians.items()},
                         "ratio": medians["with"] / medians["without"],
                         "ratio_improved": medians["with improved"] / medians["without"],
                         "pass_ratio_improved": medians["pass with improved"] / medians["pass without"],
                         "repeats": repeats_of_size}
    return {"precision": predictor.encoder.precision, "build_s": [b[0] for b in builds],
            "build_median_s": statistics.median(b[0] for b in builds), "build_examples": len(texts),
            "improve_build_s": [b[0] for b in improved_builds],
            "improve_build_median_s": statistics.median(b[0] for b in improved_builds),
            "improve_build_examples": len(b_texts), "analyse": analyse}


def one_analyse(predictor: Predictor, builder: ReferenceBuilder, sentences: list[str], task) -> None:
    """What an Analyse computes on the server: the model pass, predictions, the table and the map."""
    analysis = Analysis.run(predictor, sentences, task)
    analysis.table()
    map_figure(analysis, map_view(analysis.embeddings, 2, builder, True), "intent", 2)


def run(args: argparse.Namespace) -> dict:
    for folder, what in ((args.source / "Datasets",
                          "clone github.com/jianguoz/Few-Shot-Intent-Detection there, or pass --source"),
                         (args.wikitext, "copy WikiText-2's valid.txt and test.txt there, or pass --wikitext")):
        if not folder.is_dir():
            raise SystemExit(f"{folder} is missing: {what}")
    embed = CachedEmbedder(SentenceEncoder.load())
    settings = QUICK_IMPROVE if args.quick else improve.ImproveSettings()
    seeds = (0,) if args.quick else SEEDS
    results = {"quick": args.quick, "command": " ".join(["python", "-m", "benchmarks.fewshot", *sys.argv[1:]]),
               "torch_threads": torch.get_num_threads(), "load_average_before": os.getloadavg()[0],
               "improve_settings": asdict(settings), "seeds": list(seeds),
               "accuracy": {}, "published_cpft": {f"{d} {s}": v for (d, s), v in PUBLISHED.items()}}
    keep = {dataset: quick_labels(args.source, dataset) if args.quick else None for dataset in SPLITS}
    built = {}
    for dataset, splits in SPLITS.items():
        for split in splits:
            name = f"{dataset} {split}"
            results["accuracy"][name], built[name] = measure_split(embed, args.source, dataset, split, keep[dataset],
                                                                   seeds, settings)
    results["scope"] = measure_scope(args.source, keep["CLINC150"], built["CLINC150 train_10"])
    results["general_text"] = measure_general_text(args.source, args.data_dir, args.wikitext, built, keep,
                                                   QUICK_GENERAL_TEXT if args.quick else GENERAL_TEXT_SIZE)
    results["time"] = measure_time(args.source, args.data_dir, args.precision, args.quick, settings)
    results["load_average_after"] = os.getloadavg()[0]
    return results


def quick_labels(source: Path, dataset: str) -> set[str]:
    return set(sorted(set(read_split(source, dataset, "train_5")[1]))[:QUICK_INTENTS])


def markdown(results: dict) -> str:
    methods = [c.name for c in fewshot.candidates()]
    lines = ["| split | " + " | ".join(methods) + " | chosen on valid | as the app builds it | improved: median "
             "(min-max) of seeds | CPFT | target |", "|---|" + "---|" * (len(methods) + 5)]
    for name, found in results["accuracy"].items():
        dataset, split = name.split()
        target, better = TARGETS.get((dataset, split)), found["improved"]
        cells = [f"{found['methods'][m]['test']:.1f}" for m in methods]
        lines.append(f"| {dataset} {split.replace('train_', '')}-shot | " + " | ".join(cells) +
                     f" | {found['chosen_test']:.1f} ({found['chosen_on_valid']}) | {found['app']['test']:.1f} "
                     f"({found['app']['method']}) | **{better['test_median']:.1f}** ({better['test_min']:.1f}-"
                     f"{better['test_max']:.1f}) | {PUBLISHED[(dataset, split)]:.2f} | "
                     f"{'-' if target is None else f'{target:.1f}'} |")
    scope, timing = results["scope"], results["time"]
    lines += ["", f"Out of scope (CLINC150 10-shot task; {scope['method']}): AUROC {scope['auroc']:.3f}, improved "
              f"{scope['improved']['auroc']:.3f}; oos recall {100 * scope['oos_recall_at_5pct_false_rejection']:.1f}% "
              f"(improved {100 * scope['improved']['oos_recall_at_5pct_false_rejection']:.1f}%) at 5% false rejection "
              "(threshold set on test); with the task's own threshold: false rejection "
              f"{100 * scope['own_threshold']['false_rejection']:.1f}% (improved "
              f"{100 * scope['improved']['own_threshold']['false_rejection']:.1f}%), oos recall "
              f"{100 * scope['own_threshold']['oos_recall']:.1f}% (improved "
              f"{100 * scope['improved']['own_threshold']['oos_recall']:.1f}%). "
              "Valid AUROC: " + ", ".join(f"{k} {v:.3f}" for k, v in scope["valid_auroc"].items()), "",
              "| task | in-scope test rejected | tweets flagged | encyclopedia flagged | (dev: in scope / tweets / "
              "encyclopedia) |", "|---|---|---|---|---|"]
    for task, g in results["general_text"]["tasks"].items():
        lines.append(f"| {task} | {100 * g['in_scope_test_rejected']:.1f}% | {100 * g['tweets_test_flagged']:.1f}% | "
                     f"{100 * g['encyclopedia_test_flagged']:.1f}% | {100 * g['in_scope_valid_rejected']:.1f}% / "
                     f"{100 * g['tweets_dev_flagged']:.1f}% / {100 * g['encyclopedia_dev_flagged']:.1f}% |")
    lines += ["", f"Time ({timing['precision']}): a {timing['build_examples']:,}-example task builds in "
              f"{timing['build_median_s']:.1f} s, an improved {timing['improve_build_examples']:,}-example one in "
              f"{timing['improve_build_median_s']:.1f} s (medians of {len(timing['build_s'])}); one Analyse without / "
              "with a third task / with an improved one, and the model pass alone without / with the improved one: " +
              "; ".join(f"{n} sentences {a['without_s']:.3f} / {a['with_s']:.3f} (x{a['ratio']:.3f}) / "
                        f"{a['with_improved_s']:.3f} s (x{a['ratio_improved']:.3f}), pass {a['pass_without_s']:.3f} / "
                        f"{a['pass_with_improved_s']:.3f} s (x{a['pass_ratio_improved']:.3f})"
                        for n, a in timing["analyse"].items())]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fewshot", description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT / "originals" / "Few-Shot-Intent-Detection",
                        help="a clone of jianguoz/Few-Shot-Intent-Detection (default originals/Few-Shot-Intent-Detection)")
    parser.add_argument("--wikitext", type=Path, default=ROOT / "originals" / "wikitext-2",
                        help="a folder with WikiText-2's valid.txt and test.txt (default originals/wikitext-2)")
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
