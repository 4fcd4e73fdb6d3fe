"""Serving both tasks: one multi-task model vs two separate single-task models (question 2).

    python -m experiments.serving_cost [--sentences 1000] [--repeats 5]

Each setup is measured in its own fresh process (so resident memory is its own): parameters held,
RSS after loading and after serving, and the median time to answer both tasks for the same sentences.
The setups alternate A/B/A/B over --rounds processes each; medians over all repeats are reported.
Writes experiments/results/q2_serving.json.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np
import psutil

from benchmarks.run import load_sentences
from experiments import save_result
from mtl_core.settings import ROOT, Settings

SETUPS = {  # name -> checkpoints that together answer both tasks
    "multi-task (one model)": ["runs/exp/q1_freeze/top2_s0"],
    "two separate models": ["runs/exp/q2_separate/intent_only_s0", "runs/exp/q2_separate/sentiment_only_s0"],
}


def sentences(n: int) -> list[str]:
    return load_sentences(Settings.from_env().training_data_dir, None)[:n]


def worker(checkpoints: list[str], n: int, repeats: int) -> dict:
    """In this process: load every checkpoint with its own backbone, answer both tasks `repeats` times."""
    import torch

    from mtl_core.predictor import Predictor

    rss = lambda: psutil.Process().memory_info().rss / 2**20  # noqa: E731
    texts = sentences(n)
    base = rss()
    predictors = [Predictor.load(c) for c in checkpoints]
    loaded = rss()
    parameters = sum(p.numel() for pr in predictors for p in pr.model.parameters())
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for predictor in predictors:
            predictor.run(texts)
        times.append(time.perf_counter() - started)
    return {"parameters": parameters, "rss_model_mb": round(loaded - base, 1), "rss_peak_mb": round(rss(), 1),
            "seconds": times, "torch_threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sentences", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3, help="per process")
    p.add_argument("--rounds", type=int, default=2, help="processes per setup, alternating")
    p.add_argument("--worker", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(worker(args.worker, args.sentences, args.repeats)))
        return 0
    runs: dict[str, list[dict]] = {name: [] for name in SETUPS}
    for _ in range(args.rounds):
        for name, checkpoints in SETUPS.items():
            out = subprocess.run([sys.executable, "-m", "experiments.serving_cost", "--sentences", str(args.sentences), "--repeats",
                                  str(args.repeats), "--worker", *checkpoints], cwd=ROOT, check=True,
                                 capture_output=True, text=True)
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    report = {"command": " ".join(["python", "-m", "experiments.serving_cost", *sys.argv[1:]]),
              "sentences": args.sentences, "setups": {}}
    for name, results in runs.items():
        seconds = [s for r in results for s in r["seconds"]]
        report["setups"][name] = {"checkpoints": SETUPS[name], "parameters": results[0]["parameters"],
                                  "rss_model_mb": float(np.median([r["rss_model_mb"] for r in results])),
                                  "rss_peak_mb": float(np.median([r["rss_peak_mb"] for r in results])),
                                  "median_s": round(float(np.median(seconds)), 3), "runs": len(seconds)}
    mtl, separate = report["setups"].values()
    report["separate_vs_multitask_time_ratio"] = round(separate["median_s"] / mtl["median_s"], 2)
    save_result("q2_serving", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
