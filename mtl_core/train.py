"""Multi-task training on cached frozen features.

    python -m mtl_core.train --output runs/NAME [--config experiments/X.json] [--task-layers K] ...

Every run writes <output>/train_config.json (the resolved settings), the checkpoint (config.json +
weights.safetensors) and metrics.json (dev history, best epoch, calibration, wall times).
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import checkpoint
from .data import TASKS, TaskData, default_data_dir, load_task, stratified_subsample
from .encoder import SentenceEncoder
from .evaluate import PRIMARY_METRIC, expected_calibration_error, fit_temperature, task_metrics
from .features import FeatureStore, cached_features, logits_from_features, store_logits
from .model import MultiTaskModel

log = logging.getLogger(__name__)
SAMPLING = ("proportional", "temperature", "uniform")


@dataclass
class TrainConfig:
    output: str = "runs/default"
    data_dir: str = field(default_factory=lambda: str(default_data_dir()))
    backbone: str | None = None
    tasks: list[str] = field(default_factory=lambda: list(TASKS))  # tasks trained in this run
    task_layers: int = 2  # 0: frozen backbone; k: top-k layers fine-tuned (a copy); 6: all layers
    head_hidden: int = 0
    dropout: float = 0.1
    freeze: list[str] = field(default_factory=list)  # "task_layers" and/or head names
    init_checkpoint: str | None = None  # start from these heads/task layers
    sampling: str = "proportional"
    sampling_temperature: float = 2.0
    loss_weights: dict[str, float] = field(default_factory=dict)  # static; default 1.0 each
    uncertainty_weighting: bool = False  # Kendall et al. 2018: learned per-task log-variance
    class_weighting: list[str] = field(default_factory=list)  # tasks with balanced class weights
    oversample: dict[str, float] = field(default_factory=dict)  # task -> factor on its sampling size
    train_size: dict[str, int] = field(default_factory=dict)  # stratified subsample of a task's train
    limit: int | None = None  # cap every split at this many rows (tests, quick runs)
    epochs: int = 8
    batch_size: int = 32
    lr: float = 1e-4  # task layers
    head_lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: float = 0.06
    patience: int = 2
    seed: int = 0
    calibrate: bool = True
    cache_dir: str | None = "runs/cache"


# ---------------------------------------------------------------- data and features

def load_data(cfg: TrainConfig) -> dict[str, TaskData]:
    data = {}
    for task in TASKS:
        task_data = load_task(cfg.data_dir, task)
        task_data.train = stratified_subsample(task_data.train, cfg.train_size.get(task), cfg.seed)
        if cfg.limit:
            for split in ("train", "dev", "test"):
                part = getattr(task_data, split)
                setattr(task_data, split, part.subset(np.arange(min(cfg.limit, len(part)))))
        data[task] = task_data
    return data


def build_model(cfg: TrainConfig, data: dict[str, TaskData], encoder: SentenceEncoder) -> MultiTaskModel:
    if cfg.init_checkpoint:
        model = checkpoint.load(cfg.init_checkpoint, encoder)
        if model.config.task_layers != cfg.task_layers:
            raise ValueError(f"--task-layers {cfg.task_layers} differs from {cfg.init_checkpoint} "
                             f"({model.config.task_layers})")
        return model
    return MultiTaskModel.build(encoder, data["intent"].label_names, cfg.task_layers, cfg.head_hidden, cfg.dropout)


# ---------------------------------------------------------------- sampling and losses

def task_probabilities(sizes: dict[str, float], sampling: str, temperature: float) -> dict[str, float]:
    """p_t proportional to n_t ** (1 / T): T = 1 proportional, T -> inf uniform."""
    if sampling not in SAMPLING:
        raise ValueError(f"unknown sampling {sampling!r}; valid: {list(SAMPLING)}")
    power = {"proportional": 1.0, "temperature": 1.0 / temperature, "uniform": 0.0}[sampling]
    weights = {t: n ** power for t, n in sizes.items()}
    total = sum(weights.values())
    return {t: w / total for t, w in weights.items()}


class BatchSampler:
    """Endless shuffled batches of one task's rows, a new shuffle per pass.

    With token lengths given, rows are sorted by length inside windows of `window` batches, so a batch
    holds sentences of similar length and little compute goes to padding; batch order stays random.
    """

    def __init__(self, n: int, batch_size: int, rng: np.random.Generator, lengths: np.ndarray | None = None,
                 window: int = 50):
        self.n, self.batch_size, self.rng, self.lengths, self.window = n, batch_size, rng, lengths, window
        self.batches: list[np.ndarray] = []

    def new_pass(self) -> list[np.ndarray]:
        order = self.rng.permutation(self.n)
        if self.lengths is not None:
            span = self.batch_size * self.window
            order = np.concatenate([w[np.argsort(self.lengths[w], kind="stable")]
                                    for w in np.split(order, range(span, self.n, span))])
        batches = np.split(order, range(self.batch_size, self.n, self.batch_size))
        return [batches[i] for i in self.rng.permutation(len(batches))]

    def next(self) -> list[int]:
        if not self.batches:
            self.batches = self.new_pass()
        return self.batches.pop().tolist()


def class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Balanced weights n / (C * count_c), as scikit-learn's class_weight='balanced'."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return torch.tensor(len(labels) / (num_classes * np.maximum(counts, 1)), dtype=torch.float32)


class TaskLossWeighting(nn.Module):
    """Static per-task weights, or learned uncertainty weighting: exp(-s_t) * L_t + s_t."""

    def __init__(self, tasks: list[str], static: dict[str, float], learned: bool):
        super().__init__()
        self.static = {t: static.get(t, 1.0) for t in tasks}
        self.learned = learned
        self.log_vars = nn.ParameterDict({t: nn.Parameter(torch.zeros(())) for t in tasks}) if learned else None

    def forward(self, task: str, loss: torch.Tensor) -> torch.Tensor:
        if self.learned:
            return torch.exp(-self.log_vars[task]) * loss + self.log_vars[task]
        return self.static[task] * loss


# ---------------------------------------------------------------- training

def dev_metrics(model: MultiTaskModel, stores: dict[str, FeatureStore], data: dict[str, TaskData],
                tasks: list[str]) -> dict[str, dict[str, float]]:
    return {t: task_metrics(data[t].dev.labels, store_logits(model, stores[t], t).argmax(1).numpy()) for t in tasks}


def selection_score(metrics: dict[str, dict[str, float]]) -> float:
    """Mean of each task's official metric on dev: what early stopping and model choice use."""
    return float(np.mean([m[PRIMARY_METRIC[t]] for t, m in metrics.items()]))


def make_optimizer(model: MultiTaskModel, weighting: TaskLossWeighting, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = [{"params": [p for p in model.task_layers.parameters() if p.requires_grad], "lr": cfg.lr},
              {"params": [p for p in model.heads.parameters() if p.requires_grad], "lr": cfg.head_lr},
              {"params": list(weighting.parameters()), "lr": cfg.head_lr, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=cfg.weight_decay)


def linear_schedule(optimizer: torch.optim.Optimizer, total: int, warmup: float) -> torch.optim.lr_scheduler.LambdaLR:
    warm = max(1, int(total * warmup))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warm, max(0.0, (total - step) / max(1, total - warm))))


def train_epoch(model, stores, data, samplers, probs, losses, weighting, optimizer, scheduler,
                steps: int, rng: random.Random, desc: str) -> float:
    model.train()
    tasks, weights = list(probs), list(probs.values())
    running, bar = 0.0, tqdm(range(steps), desc=desc, unit="step", leave=False)
    for step in bar:
        task = rng.choices(tasks, weights)[0]
        idx = samplers[task].next()
        logits = logits_from_features(model, stores[task], idx, [task])[task]
        target = torch.as_tensor(data[task].train.labels[idx])
        loss = weighting(task, losses[task](logits, target))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
        bar.set_postfix(loss=f"{running:.3f}", task=task)
    return running


def calibrate(model: MultiTaskModel, stores: dict[str, FeatureStore], data: dict[str, TaskData],
              tasks: list[str]) -> dict[str, dict[str, float]]:
    """Temperature scaling per head on dev; returns dev ECE before and after."""
    report = {}
    for task in tasks:
        logits, labels = store_logits(model, stores[task], task), data[task].dev.labels
        temperature = fit_temperature(logits, torch.as_tensor(labels))
        before = expected_calibration_error(torch.softmax(logits, 1).numpy(), labels)
        after = expected_calibration_error(torch.softmax(logits / temperature, 1).numpy(), labels)
        model.config.head(task).temperature = temperature
        report[task] = {"temperature": temperature, "dev_ece_before": before, "dev_ece_after": after}
    return report


def train(cfg: TrainConfig, encoder: SentenceEncoder | None = None) -> dict:
    torch.manual_seed(cfg.seed)
    np_rng, py_rng = np.random.default_rng(cfg.seed), random.Random(cfg.seed)
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    started = time.perf_counter()

    data = load_data(cfg)
    encoder = encoder or SentenceEncoder.load(cfg.backbone)
    model = build_model(cfg, data, encoder)
    for part in cfg.freeze:
        model.freeze(part)
    tasks = cfg.tasks
    train_stores = {t: cached_features(model, data[t].train.texts, cfg.cache_dir, f"{t} train features") for t in tasks}
    dev_stores = {t: cached_features(model, data[t].dev.texts, cfg.cache_dir, f"{t} dev features") for t in tasks}
    feature_seconds = time.perf_counter() - started

    sizes = {t: len(data[t].train) * cfg.oversample.get(t, 1.0) for t in tasks}
    probs = task_probabilities(sizes, cfg.sampling, cfg.sampling_temperature)
    steps = math.ceil(sum(len(data[t].train) for t in tasks) / cfg.batch_size)
    samplers = {t: BatchSampler(len(data[t].train), cfg.batch_size, np_rng, train_stores[t].token_lengths())
                for t in tasks}
    losses = {t: nn.CrossEntropyLoss(weight=class_weights(data[t].train.labels, len(data[t].label_names))
                                     if t in cfg.class_weighting else None) for t in tasks}
    weighting = TaskLossWeighting(tasks, cfg.loss_weights, cfg.uncertainty_weighting)
    optimizer = make_optimizer(model, weighting, cfg)
    scheduler = linear_schedule(optimizer, steps * cfg.epochs, cfg.warmup)

    history, best, best_state, waited = [], -1.0, None, 0
    for epoch in range(1, cfg.epochs + 1):
        loss = train_epoch(model, train_stores, data, samplers, probs, losses, weighting, optimizer,
                           scheduler, steps, py_rng, f"epoch {epoch}/{cfg.epochs}")
        metrics = dev_metrics(model, dev_stores, data, tasks)
        score = selection_score(metrics)
        history.append({"epoch": epoch, "train_loss": loss, "dev": metrics, "dev_score": score})
        log.info("epoch %d: loss %.4f, dev %s, score %.4f", epoch, loss,
                 {t: round(m[PRIMARY_METRIC[t]], 4) for t, m in metrics.items()}, score)
        if score > best:
            best, best_state, waited = score, copy.deepcopy(checkpoint.trained_state(model)), 0
        else:
            waited += 1
            if waited >= cfg.patience:
                log.info("early stop: no dev improvement for %d epochs", waited)
                break
    model.load_state_dict(best_state, strict=False)
    best_epoch = max(history, key=lambda h: h["dev_score"])
    calibration = calibrate(model, dev_stores, data, tasks) if cfg.calibrate else {}
    model.config.trained = True
    model.config.extra = {"trained_tasks": tasks, "train_config": asdict(cfg)}
    checkpoint.save(model, out)

    metrics = {"best_epoch": best_epoch["epoch"], "dev": best_epoch["dev"], "dev_score": best,
               "history": history, "calibration": calibration,
               "task_probabilities": probs, "train_rows": {t: len(data[t].train) for t in tasks},
               "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
               "uncertainty_log_vars": ({t: v.item() for t, v in weighting.log_vars.items()}
                                        if weighting.learned else None),
               "wall_seconds": {"features": feature_seconds, "total": time.perf_counter() - started},
               "torch_threads": torch.get_num_threads()}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


# ---------------------------------------------------------------- CLI

def parse_mapping(text: str, cast=float) -> dict:
    """"intent=1,sentiment=2" -> {"intent": 1.0, "sentiment": 2.0}."""
    pairs = [item.split("=", 1) for item in text.split(",") if item]
    if any(len(p) != 2 for p in pairs):
        raise argparse.ArgumentTypeError(f"expected task=value[,task=value], got {text!r}")
    return {k.strip(): cast(v) for k, v in pairs}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train the intent and sentiment heads on one shared encoder.")
    p.add_argument("--config", help="JSON file of TrainConfig fields; flags given here override it")
    p.add_argument("--output")
    p.add_argument("--data-dir")
    p.add_argument("--backbone")
    p.add_argument("--tasks", type=lambda s: s.split(","))
    p.add_argument("--task-layers", type=int, help="0 frozen backbone, k top-k layers, 6 all layers")
    p.add_argument("--head-hidden", type=int)
    p.add_argument("--dropout", type=float)
    p.add_argument("--freeze", type=lambda s: s.split(","), help="task_layers and/or head names")
    p.add_argument("--init-checkpoint")
    p.add_argument("--sampling", choices=SAMPLING)
    p.add_argument("--sampling-temperature", type=float)
    p.add_argument("--loss-weights", type=parse_mapping, help="e.g. intent=1,sentiment=3")
    p.add_argument("--uncertainty-weighting", action="store_true", default=None)
    p.add_argument("--class-weighting", type=lambda s: s.split(","))
    p.add_argument("--oversample", type=parse_mapping, help="e.g. sentiment=10")
    p.add_argument("--train-size", type=lambda s: parse_mapping(s, int), help="e.g. sentiment=500")
    p.add_argument("--limit", type=int)
    for name, kind in [("epochs", int), ("batch-size", int), ("lr", float), ("head-lr", float),
                       ("weight-decay", float), ("warmup", float), ("patience", int), ("seed", int)]:
        p.add_argument(f"--{name}", type=kind)
    p.add_argument("--no-calibrate", dest="calibrate", action="store_false", default=None)
    p.add_argument("--cache-dir")
    p.add_argument("--no-cache", dest="cache_dir", action="store_const", const="")
    return p


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    values = json.loads(Path(args.config).read_text()) if args.config else {}
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(values) - known
    if unknown:
        raise SystemExit(f"error: {args.config} has unknown fields {sorted(unknown)}")
    values.update({k: v for k, v in vars(args).items() if k in known and v is not None})
    if values.get("cache_dir") == "":
        values["cache_dir"] = None
    return TrainConfig(**values)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    cfg = resolve_config(parser().parse_args(argv))
    metrics = train(cfg)
    log.info("done in %.0f s; best epoch %d, dev %s -> %s", metrics["wall_seconds"]["total"],
             metrics["best_epoch"], metrics["dev"], cfg.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
