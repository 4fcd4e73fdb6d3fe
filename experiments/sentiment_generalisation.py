"""Sentiment beyond SemEval: does a checkpoint's sentiment head hold on reviews and other tweets?

    python -m experiments.sentiment_generalisation --dir DIR [--checkpoints A B ...]

Never used to choose anything: it checks that a gain on the SemEval-2017 test set is not bought with
generality. DIR holds public copies of (file layout as published; SHA-256 of each file used is recorded):

  uci_sentiment_labelled_sentences/{amazon_cells,imdb,yelp}_labelled.txt   Kotzias et al. (2015), UCI:
      1,000 review sentences each, `sentence<TAB>0|1`
  sentiment140_test/testdata.manual.2009.06.14.csv   Go et al. (2009): 498 hand-labelled tweets, 0/2/4
  sst/fine_sentiment-test    SST-5 test sentences (Socher et al., 2013), `label sentence`, 0-4
  sst/sst2_glue_dev.tsv      GLUE SST-2 dev, `sentence<TAB>label`, header

Three-class sets report macro-averaged recall (SemEval's metric; SST-5 read as 0-1 negative, 2 neutral,
3-4 positive); binary sets report accuracy of negative vs positive (the larger of the two
probabilities) and how many sentences the head calls neutral. Writes
experiments/results/sentiment_generalisation.json.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import os
from pathlib import Path

import numpy as np

from experiments import save_result
from mtl_core.serving.predictor import Predictor
from mtl_core.settings import DEFAULT_CHECKPOINT, ROOT
from mtl_core.training.metrics import task_metrics

NEGATIVE, NEUTRAL, POSITIVE = 0, 1, 2
SST5_TO_3 = {0: NEGATIVE, 1: NEGATIVE, 2: NEUTRAL, 3: POSITIVE, 4: POSITIVE}


def lines(path: Path) -> list[str]:
    # split on "\n" only: some review sentences hold U+0085, which str.splitlines() would break on
    return [line for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def uci(path: Path) -> tuple[list[str], np.ndarray]:
    rows = [line.rsplit("\t", 1) for line in lines(path)]
    return [t.strip() for t, _ in rows], np.array([POSITIVE if y.strip() == "1" else NEGATIVE for _, y in rows])


def sentiment140(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return [r[5] for r in rows], np.array([{"0": NEGATIVE, "2": NEUTRAL, "4": POSITIVE}[r[0]] for r in rows])


def sst5(path: Path) -> tuple[list[str], np.ndarray]:
    rows = [line.split(" ", 1) for line in lines(path)]
    return [t for _, t in rows], np.array([SST5_TO_3[int(y)] for y, _ in rows])


def sst2(path: Path) -> tuple[list[str], np.ndarray]:
    rows = [line.rsplit("\t", 1) for line in lines(path)[1:]]
    return [t.strip() for t, _ in rows], np.array([POSITIVE if y.strip() == "1" else NEGATIVE for _, y in rows])


SETS = {  # name -> (file under DIR, reader, three classes?)
    "Amazon product reviews (UCI)": ("uci_sentiment_labelled_sentences/amazon_cells_labelled.txt", uci, False),
    "IMDb movie reviews (UCI)": ("uci_sentiment_labelled_sentences/imdb_labelled.txt", uci, False),
    "Yelp restaurant reviews (UCI)": ("uci_sentiment_labelled_sentences/yelp_labelled.txt", uci, False),
    "SST-2 dev, movie review sentences": ("sst/sst2_glue_dev.tsv", sst2, False),
    "SST-5 test as 3 classes, movie review sentences": ("sst/fine_sentiment-test", sst5, True),
    "Sentiment140 test tweets (2009)": ("sentiment140_test/testdata.manual.2009.06.14.csv", sentiment140, True),
}


def score(probs: np.ndarray, labels: np.ndarray, three_classes: bool) -> dict:
    if three_classes:
        return {"macro_recall": task_metrics(labels, probs.argmax(1))["macro_recall"]}
    polar = np.where(probs[:, POSITIVE] > probs[:, NEGATIVE], POSITIVE, NEGATIVE)
    return {"accuracy_neg_vs_pos": float((polar == labels).mean()),
            "called_neutral": float((probs.argmax(1) == NEUTRAL).mean())}


def sentiment_probabilities(predictor: Predictor, texts: list[str]) -> np.ndarray:
    """(N, 3) in the order negative, neutral, positive, whatever the head's own label order."""
    results = predictor.run(texts, batch_size=64)
    order = [results.labels["sentiment"].index(label) for label in ("negative", "neutral", "positive")]
    return results.probs["sentiment"][:, order]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", type=Path, required=True, help="folder with the public copies (layout above)")
    p.add_argument("--checkpoints", nargs="+", default=[str(DEFAULT_CHECKPOINT)])
    args = p.parse_args(argv)
    data = {name: (reader(args.dir / file), file, three) for name, (file, reader, three) in SETS.items()}
    report = {"command": "python -m experiments.sentiment_generalisation --dir DIR --checkpoints "
                         + " ".join(args.checkpoints),
              "files": {file: {"sha256": hashlib.sha256((args.dir / file).read_bytes()).hexdigest(),
                               "sentences": len(texts)} for name, ((texts, _), file, _) in data.items()},
              "checkpoints": {}}
    for checkpoint in args.checkpoints:
        predictor = Predictor.load(checkpoint)
        report["checkpoints"][os.path.relpath(checkpoint, ROOT)] = {
            name: score(sentiment_probabilities(predictor, texts), labels, three)
            for name, ((texts, labels), _, three) in data.items()}
    save_result("sentiment_generalisation", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
