"""Run one experiment sweep: every run x seed through `python -m mtl_core train` and `evaluate`.

    python -m experiments.sweep experiments/q1_freeze.json [--only NAME ...] [--dry-run]

A sweep file holds `base` (TrainConfig fields shared by all runs) and `runs` (name, fields that differ,
seeds). For each run we write the resolved config to experiments/configs/<sweep>/<name>.json (committed),
then run, for each seed, exactly the two commands printed:

    python -m mtl_core train --config experiments/configs/<sweep>/<name>.json --seed S --output runs/exp/<sweep>/<name>_sS
    python -m mtl_core evaluate --checkpoint runs/exp/<sweep>/<name>_sS --data-dir DATA --cache-dir runs/cache

With --dev-only the evaluate command is left out: candidates are compared on dev, and only the finalists
are run again without it to read their test score once. Finished steps are skipped, so an interrupted
sweep resumes. The summary (dev and test metrics per
seed, mean and std, trainable parameters, wall time, embedding drift) goes to
experiments/results/<sweep>.json (or --results-dir). Models are chosen on dev; test is read once per run, for the report.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import time
from pathlib import Path

import numpy as np
import torch

from experiments import add_results_argument
from mtl_core.commands import evaluate, train
from mtl_core.data.loading import load_task
from mtl_core.model.encoder import l2_normalize, mean_pool, run_layers
from mtl_core.settings import ROOT, Settings
from mtl_core.training.features import cached_features

CACHE = "runs/cache"
DRIFT_SAMPLE = 500  # sentences per task for the embedding-drift check


def run_config(sweep: str, run: dict, base: dict) -> Path:
    path = ROOT / "experiments" / "configs" / sweep / f"{run['name']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {**base, **run.get("args", {})}
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def commands(config: Path, seed: int, output: Path, data_dir: str) -> tuple[list[str], list[str]]:
    rel = str(config.relative_to(ROOT))
    train_args = ["--config", rel, "--seed", str(seed), "--output", str(output), "--data-dir", data_dir]
    eval_args = ["--checkpoint", str(output), "--data-dir", data_dir, "--cache-dir", CACHE]
    return train_args, eval_args


@torch.no_grad()
def embedding_drift(output: Path, data_dir: str) -> dict | None:
    """How far the fine-tuned task layers moved the sentence embedding from the original model.

    On the first DRIFT_SAMPLE test sentences of each task: mean cosine between the pooled output of the
    fine-tuned copy and of the original layers, and the Spearman correlation of all pairwise
    similarities (an STS-style agreement: 1.0 means the similarity ranking is unchanged).
    """
    from scipy.stats import spearmanr

    from mtl_core.serving.predictor import Predictor

    model = Predictor.load(str(output)).model.eval()
    if model.config.task_layers == 0:
        return None
    tuned, original = [], []
    for task in ("intent", "sentiment"):
        texts = load_task(data_dir, task).test.texts[:DRIFT_SAMPLE]
        store = cached_features(model, texts, CACHE, f"{task} drift features")
        for start in range(0, len(store), 128):
            shared, mask = store.batch(list(range(start, min(start + 128, len(store)))))
            tuned.append(l2_normalize(mean_pool(run_layers(shared, mask, model.task_layers), mask)))
            general = model.encoder.hidden_states(None, mask, model.split, hidden=shared)
            original.append(l2_normalize(mean_pool(general, mask)))
    tuned, original = torch.cat(tuned), torch.cat(original)
    upper = np.triu_indices(len(tuned), k=1)
    pairs_tuned, pairs_original = (tuned @ tuned.T).numpy()[upper], (original @ original.T).numpy()[upper]
    return {"mean_cosine_to_original": float((tuned * original).sum(1).mean()),
            "pairwise_similarity_spearman": float(spearmanr(pairs_tuned, pairs_original).statistic)}


def run_seed(config: Path, seed: int, output: Path, data_dir: str, dry_run: bool, test: bool) -> dict | None:
    train_args, eval_args = commands(config, seed, output, data_dir)
    print("python -m mtl_core train " + shlex.join(train_args), flush=True)
    if test:
        print("python -m mtl_core evaluate " + shlex.join(eval_args), flush=True)
    if dry_run:
        return None
    metrics_path, report_path = output / "metrics.json", output / "eval_test" / "metrics.json"
    if not metrics_path.is_file():
        train.main(train_args)
    if test and not report_path.is_file():
        evaluate.main(eval_args)
    metrics = json.loads(metrics_path.read_text())
    report = json.loads(report_path.read_text()) if test else None
    drift_path = output / "drift.json"
    if not drift_path.is_file():
        drift_path.write_text(json.dumps(embedding_drift(output, data_dir)) + "\n")
    return {"seed": seed, "best_epoch": metrics["best_epoch"], "dev": metrics["dev"],
            "weight_average": metrics.get("weight_average"),
            "test": report and {t: {k: m[k] for k in ("accuracy", "macro_f1", "macro_recall", "ece")}
                                for t, m in report["tasks"].items()},
            "trainable_parameters": metrics["trainable_parameters"],
            "wall_seconds": metrics["wall_seconds"], "train_rows": metrics["train_rows"],
            "embedding_drift": json.loads(drift_path.read_text())}


def summarise(seeds: list[dict], split: str = "test") -> dict:
    """Mean and sample standard deviation (ddof=1; 0 for one seed) over seeds of every metric of every task
    on `split`."""
    summary = {}
    for task in seeds[0][split] or {}:
        for metric in seeds[0][split][task]:
            values = [s[split][task][metric] for s in seeds]
            std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            summary[f"{task}.{metric}"] = {"mean": float(np.mean(values)), "std": std, "n": len(values)}
    summary["train_seconds"] = float(np.mean([s["wall_seconds"]["total"] for s in seeds]))
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("sweep", help="experiments/<name>.json")
    p.add_argument("--only", nargs="*", help="run only these run names")
    p.add_argument("--data-dir", default=os.path.relpath(Settings.from_env().training_data_dir, ROOT))
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--dev-only", action="store_true", help="train and compare on dev; no test evaluation")
    add_results_argument(p)
    p.add_argument("--seeds", nargs="*", type=int,
                   help="run only these seeds (e.g. one more), keeping the other seeds already in the results")
    args = p.parse_args(argv)
    spec_path = Path(args.sweep).resolve()
    os.chdir(ROOT)  # the printed commands are relative to the repository root
    spec, name = json.loads(spec_path.read_text()), spec_path.stem
    results_path = args.results_dir.resolve() / f"{name}.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    started = time.perf_counter()
    for run in spec["runs"]:
        if args.only and run["name"] not in args.only:
            continue
        config = run_config(name, run, spec.get("base", {}))
        wanted = args.seeds if args.seeds is not None else run.get("seeds", [0])
        seeds = [run_seed(config, seed, Path("runs", "exp", name, f"{run['name']}_s{seed}"), args.data_dir,
                          args.dry_run, not args.dev_only) for seed in wanted]
        if args.dry_run:
            continue
        kept = [s for s in results.get(run["name"], {}).get("seeds", []) if s["seed"] not in wanted]
        seeds = sorted(kept + seeds, key=lambda s: s["seed"]) if args.seeds is not None else seeds
        results[run["name"]] = {"config": str(config.relative_to(ROOT)), "label": run.get("label", run["name"]),
                                "seeds": seeds, "summary": summarise(seeds), "dev_summary": summarise(seeds, "dev")}
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"sweep {name}: {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
