"""Serving both tasks: one multi-task model vs separate single-task models (Step 3, one model or two).

    python -m experiments.serving_cost [--sentences 1000] [--repeats 7]

Compute does not depend on the weights' values, so every setup runs the shipped checkpoint's layers in
the shape the setup would have, in one process, on the same batches, setups interleaved per repeat:

- multi-task, as served: 6 shared layers (the shown embedding) + the k-layer task copy + both heads
  = 6 + k layers per sentence;
- two single-task models, both tasks only: each runs its own 6 layers (6 - k + its k fine-tuned) and
  one head = 12 layers per sentence (the fair comparison: a single-task model needs no second branch);
- the same two + the original encoder for the shown embedding (what this app would need) = 18 layers;
- two two-branch models (the multi-task model run once per task: the old comparison) = 2 (6 + k) layers.

Reports the median time per setup and its ratio to the multi-task model. Writes
experiments/results/q2_serving.json.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from benchmarks.run import load_sentences
from experiments import add_results_argument, save_result
from mtl_core.serving.predictor import Predictor
from mtl_core.settings import DEFAULT_CHECKPOINT, Settings

TASKS = ["intent", "sentiment"]


def single_task(model, batch: dict, task: str) -> torch.Tensor:
    """A single-task model: its first layers, its fine-tuned top layers and its head; no embedding branch."""
    return model.heads_from_shared(model.shared_states(**batch), batch["attention_mask"], [task])[task]


SETUPS = {  # name -> (transformer layers per sentence for k task layers, what it runs on one batch)
    "multi-task (one model, as served)": (lambda k: 6 + k, lambda m, b: m(**b)),
    "two single-task models (both tasks only)": (lambda k: 12, lambda m, b: [single_task(m, b, t) for t in TASKS]),
    "two single-task models + original encoder for the embedding": (
        lambda k: 18, lambda m, b: ([single_task(m, b, t) for t in TASKS], m.encoder.hidden_states(last_layer=6, **b))),
    "two two-branch models (the multi-task model once per task)": (
        lambda k: 2 * (6 + k), lambda m, b: [m(**b, tasks=[t]) for t in TASKS]),
}


@torch.inference_mode()
def measure(n: int, repeats: int, batch_size: int = 64) -> dict:
    model = Predictor.load(str(DEFAULT_CHECKPOINT)).model.eval()
    encoder = model.encoder
    texts = load_sentences(Settings.from_env().training_data_dir, None)[:n]
    batches = [encoder.tokenize(texts[i:i + batch_size]) for i in range(0, n, batch_size)]
    seconds: dict[str, list[float]] = {name: [] for name in SETUPS}
    for round_number in range(1, repeats + 1):
        print(f"round {round_number}/{repeats}: {len(SETUPS)} setups x {n} sentences", file=sys.stderr, flush=True)
        for name, (_, run) in SETUPS.items():
            started = time.perf_counter()
            for batch in batches:
                run(model, {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]})
            seconds[name].append(time.perf_counter() - started)
    reference = float(np.median(seconds[next(iter(SETUPS))]))
    k = model.config.task_layers
    return {name: {"layers_per_sentence": layers(k), "median_s": round(float(np.median(seconds[name])), 3),
                   "ratio_to_multitask": round(float(np.median(seconds[name])) / reference, 2),
                   "seconds": [round(s, 3) for s in seconds[name]]}
            for name, (layers, _) in SETUPS.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sentences", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds over the setups")
    add_results_argument(p)
    args = p.parse_args(argv)
    report = {"command": " ".join(["python", "-m", "experiments.serving_cost", *sys.argv[1:]]),
              "sentences": args.sentences, "torch_threads": torch.get_num_threads(),
              "setups": measure(args.sentences, args.repeats)}
    save_result("q2_serving", report, args.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
