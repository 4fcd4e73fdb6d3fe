"""Which pre-trained encoder for a CPU demo: published MTEB figures next to the CPU cost measured here.

    python -m experiments.encoder_sizes [--sentences 256] [--repeats 5]

Compute does not depend on the weights' values, so each larger encoder's CPU cost is measured offline with
a randomly initialised BERT of its shape (layers x hidden size, this tokenizer, the same sentences),
as the median time to embed --sentences sentences, and its ratio to all-MiniLM-L6-v2's shape measured in
the same run. The MTEB figures are the published ones (sources in PUBLISHED). Writes
experiments/results/encoder_sizes.json.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from transformers import AutoModel

from benchmarks.run import load_sentences
from experiments import add_results_argument, save_result
from mtl_core.model.encoder import SentenceEncoder
from mtl_core.settings import Settings

SOURCES = {
    "P": "MTEB paper tables: github.com/embeddings-benchmark/mtebpaper, plotstables/all_en.txt",
    "F": "BGE README, MTEB table 'Average (56)': github.com/FlagOpen/FlagEmbedding, "
         "research/baai_general_embedding/README.md",
    "R": "github.com/embeddings-benchmark/results, results/<model>/external/*.json (from the model cards)",
}
# name -> layers, hidden, parameters, MTEB average over 56 English datasets, Banking77Classification
# accuracy, TweetSentimentExtractionClassification accuracy, sources of (average, the two tasks)
PUBLISHED = {
    "all-MiniLM-L6-v2 (this project)": (6, 384, 22_713_216, 56.26, 79.75, 55.41, "P", "P"),
    "all-MiniLM-L12-v2": (12, 384, 33_360_000, 56.53, 80.40, 54.25, "P", "P"),
    "bge-small-en-v1.5": (12, 384, 33_360_512, 62.17, 85.74, 60.51, "F", "R"),
    "all-mpnet-base-v2": (12, 768, 109_486_464, 57.78, 81.86, 55.46, "P", "P"),
    "bge-base-en-v1.5": (12, 768, 109_482_752, 63.55, 86.95, 59.38, "F", "R"),
    "e5-base-v2": (12, 768, 109_482_752, 61.50, 83.53, 60.39, "F", "R"),
    "bge-large-en-v1.5": (24, 1024, 335_142_400, 64.23, 87.79, 59.94, "F", "R"),
}


def shaped_like(reference: SentenceEncoder, layers: int, hidden: int) -> SentenceEncoder:
    """A randomly initialised encoder with this many layers and this hidden size (heads of 64 dims)."""
    config = reference.bert.config.__class__.from_dict({
        **reference.bert.config.to_dict(), "num_hidden_layers": layers, "hidden_size": hidden,
        "num_attention_heads": hidden // 64, "intermediate_size": 4 * hidden})
    return SentenceEncoder(AutoModel.from_config(config), reference.tokenizer).eval().requires_grad_(False)


def median_seconds(encoders: dict[tuple[int, int], SentenceEncoder], texts: list[str], repeats: int) -> dict:
    seconds = {shape: [] for shape in encoders}
    for _ in range(repeats):  # shapes interleaved, so drift on a shared machine hits all alike
        for shape, encoder in encoders.items():
            started = time.perf_counter()
            encoder.encode(texts, batch_size=64)
            seconds[shape].append(time.perf_counter() - started)
    return {shape: float(np.median(s)) for shape, s in seconds.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sentences", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    add_results_argument(p)
    args = p.parse_args(argv)
    reference = SentenceEncoder.load()
    texts = load_sentences(Settings.from_env().training_data_dir, None)[:args.sentences]
    shapes = sorted({(row[0], row[1]) for row in PUBLISHED.values()})
    torch.manual_seed(0)
    seconds = median_seconds({shape: shaped_like(reference, *shape) for shape in shapes}, texts, args.repeats)
    base = seconds[(6, 384)]
    models = {name: {"layers": layers, "hidden": hidden, "parameters": params, "mteb_average_56": average,
                     "mteb_banking77": banking, "mteb_tweet_sentiment": tweet, "sources": [s_avg, s_tasks],
                     "cpu_ms_per_sentence": round(1000 * seconds[(layers, hidden)] / len(texts), 2),
                     "cpu_cost_vs_minilm_l6": round(seconds[(layers, hidden)] / base, 2)}
              for name, (layers, hidden, params, average, banking, tweet, s_avg, s_tasks) in PUBLISHED.items()}
    save_result("encoder_sizes", {"command": " ".join(["python", "-m", "experiments.encoder_sizes", *sys.argv[1:]]),
                                  "sentences": len(texts), "torch_threads": torch.get_num_threads(),
                                  "sources": SOURCES, "models": models}, args.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
