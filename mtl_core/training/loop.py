"""Multi-task training on cached frozen features (the command is mtl_core/commands/train.py).

Every run writes <output>/train_config.json (the resolved settings), the checkpoint (config.json +
weights.safetensors) and metrics.json (dev history, best epoch, calibration, wall times).
"""
from __future__ import annotations

import copy
import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from mtl_core.data.loading import TASKS, TaskData, load_task, stratified_subsample
from mtl_core.model.encoder import SentenceEncoder
from mtl_core.model.model import MultiTaskModel
from mtl_core.settings import DEFAULT_DATA_DIR
from mtl_core.tasks import checkpoint
from mtl_core.tasks.definitions import SCOPED_TASK, builtin_heads
from mtl_core.tasks.scope import DEV_RECALL, ScopeDetector
from mtl_core.training.features import FeatureStore, cached_features, logits_from_features, store_logits
from mtl_core.training.metrics import PRIMARY_METRIC, calibration, task_metrics

log = logging.getLogger(__name__)
SAMPLING = ("proportional", "temperature", "uniform")


def option(default, help: str, **extra):
    """A TrainConfig field whose help text (and choices) also make its command-line flag."""
    factory = {"default_factory": default} if callable(default) else {"default": default}
    return field(**factory, metadata={"help": help, **extra})


@dataclass
class TrainConfig:
    """Every training setting; `python -m mtl_core train` has one flag per field (--task-layers for
    task_layers), and a --config JSON file may set any of them."""

    output: str = option("runs/default", "folder for the checkpoint, train_config.json and metrics.json")
    data_dir: str = option(str(DEFAULT_DATA_DIR), "data folder with intent/ and sentiment/ (default: "
                                                  "$MTL_DATA_DIR, else data/ in the checkout; never saved)")
    backbone: str | None = option(None, "hub id or folder of the backbone (default: $MTL_BACKBONE, else bundled)")
    tasks: list[str] = option(lambda: list(TASKS), "tasks trained in this run, comma-separated")
    task_layers: int = option(2, "0: frozen backbone; k: fine-tune a copy of the top k layers; 6: all layers")
    head_hidden: int = option(0, "0: linear heads; n: one hidden layer of width n")
    dropout: float = option(0.1, "dropout in the heads")
    freeze: list[str] = option(list, "parts not trained: task_layers and/or head names, comma-separated")
    init_checkpoint: str | None = option(None, "start from this checkpoint's heads and task layers")
    sampling: str = option("proportional", "which task each step trains on", choices=SAMPLING)
    sampling_temperature: float = option(2.0, "T of --sampling temperature: p_t ~ n_t ** (1 / T)")
    loss_weights: dict[str, float] = option(dict, "static task loss weights, e.g. intent=1,sentiment=3 (default 1)")
    uncertainty_weighting: bool = option(False, "learn per-task loss weights (Kendall et al., 2018)")
    class_weighting: list[str] = option(list, "tasks whose loss uses balanced class weights, comma-separated")
    label_smoothing: dict[str, float] = option(dict, "label smoothing of a task's loss, e.g. intent=0.1")
    oversample: dict[str, float] = option(dict, "factor on a task's sampling size, e.g. sentiment=10")
    train_size: dict[str, int] = option(dict, "stratified subsample of a task's train split, e.g. sentiment=500")
    limit: int | None = option(None, "cap every split at this many rows (tests, quick runs)")
    # An epoch is a number of steps, not a pass over each task: all tasks' training rows / batch size steps,
    # each on one task's batch drawn by `sampling`. With "proportional" that visits every row about once;
    # with "uniform" or "temperature" the small task's rows come round several times and the large one's
    # fewer than once per epoch.
    epochs: int = option(8, "maximum epochs (an epoch = as many steps as all tasks' rows / batch size)")
    epoch_steps: int = option(0, "steps per epoch instead (0: all tasks' rows / batch size): an equal step "
                                 "budget for runs on different data sizes")
    batch_size: int = option(32, "sentences per step")
    lr: float = option(1e-4, "learning rate of the task layers (of the top one with --layer-lr-decay)")
    layer_lr_decay: float = option(1.0, "each task layer below the top trains at this factor of the one above")
    head_lr: float = option(2e-3, "learning rate of the heads")
    weight_decay: float = option(0.01, "AdamW weight decay")
    warmup: float = option(0.06, "share of steps with a linear learning-rate warm-up")
    patience: int = option(2, "stop after this many epochs without a better dev score")
    average_from: int = option(0, "also average the trained weights of every epoch from this one on (SWA; "
                                  "0: off) and keep the average when its dev score is better")
    seed: int = option(0, "seed of sampling, initialisation and subsampling")
    calibrate: bool = option(True, "fit a temperature per head on dev (--no-calibrate to skip)")
    fit_scope: bool = option(True, f"fit the {SCOPED_TASK.name} head's out-of-scope detector on its training data "
                                   "(--no-fit-scope to skip)")
    cache_dir: str | None = option("runs/cache", "disk cache of frozen features (--no-cache for none)")


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
    heads = builtin_heads({task: data[task].label_names for task in TASKS}, cfg.head_hidden, cfg.dropout)
    return MultiTaskModel.build(encoder, heads, cfg.task_layers)


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
    top = len(model.task_layers) - 1  # layer-wise decay: the top layer trains at cfg.lr, each one below slower
    groups = [{"params": [p for p in layer.parameters() if p.requires_grad], "lr": cfg.lr * cfg.layer_lr_decay ** (top - i)}
              for i, layer in enumerate(model.task_layers)]
    groups += [{"params": [p for p in model.heads.parameters() if p.requires_grad], "lr": cfg.head_lr},
              {"params": list(weighting.parameters()), "lr": cfg.head_lr, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=cfg.weight_decay)


def linear_schedule(optimizer: torch.optim.Optimizer, total: int, warmup: float) -> torch.optim.lr_scheduler.LambdaLR:
    warm = max(1, int(total * warmup))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warm, max(0.0, (total - step) / max(1, total - warm))))


@dataclass
class TrainingRun:
    """What one training run works with, built once by `prepare`."""

    cfg: TrainConfig
    model: MultiTaskModel
    data: dict[str, TaskData]
    train_stores: dict[str, FeatureStore]
    dev_stores: dict[str, FeatureStore]
    samplers: dict[str, "BatchSampler"]
    probs: dict[str, float]  # task sampling probabilities
    losses: dict[str, nn.Module]
    weighting: TaskLossWeighting
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    steps: int  # per epoch
    rng: random.Random

    @property
    def tasks(self) -> list[str]:
        return self.cfg.tasks


def prepare(cfg: TrainConfig, encoder: SentenceEncoder) -> TrainingRun:
    """Data, model, cached frozen features, samplers, losses and optimiser of a run."""
    data = load_data(cfg)
    model = build_model(cfg, data, encoder)
    for part in cfg.freeze:
        model.freeze(part)
    tasks = cfg.tasks
    train_stores = {t: cached_features(model, data[t].train.texts, cfg.cache_dir, f"{t} train features") for t in tasks}
    dev_stores = {t: cached_features(model, data[t].dev.texts, cfg.cache_dir, f"{t} dev features") for t in tasks}
    sizes = {t: len(data[t].train) * cfg.oversample.get(t, 1.0) for t in tasks}
    steps = cfg.epoch_steps or math.ceil(sum(len(data[t].train) for t in tasks) / cfg.batch_size)
    np_rng = np.random.default_rng(cfg.seed)
    samplers = {t: BatchSampler(len(data[t].train), cfg.batch_size, np_rng, train_stores[t].token_lengths())
                for t in tasks}
    losses = {t: nn.CrossEntropyLoss(weight=class_weights(data[t].train.labels, len(data[t].label_names))
                                     if t in cfg.class_weighting else None,
                                     label_smoothing=cfg.label_smoothing.get(t, 0.0)) for t in tasks}
    weighting = TaskLossWeighting(tasks, cfg.loss_weights, cfg.uncertainty_weighting)
    optimizer = make_optimizer(model, weighting, cfg)
    return TrainingRun(cfg, model, data, train_stores, dev_stores, samplers,
                       task_probabilities(sizes, cfg.sampling, cfg.sampling_temperature), losses, weighting,
                       optimizer, linear_schedule(optimizer, steps * cfg.epochs, cfg.warmup), steps,
                       random.Random(cfg.seed))


def train_epoch(run: TrainingRun, desc: str) -> float:
    """One epoch of `run.steps` steps, each on one task's batch drawn by the task probabilities."""
    model = run.model.train()
    tasks, weights = list(run.probs), list(run.probs.values())
    running, bar = 0.0, tqdm(range(run.steps), desc=desc, unit="step", leave=False)
    for step in bar:
        task = run.rng.choices(tasks, weights)[0]
        idx = run.samplers[task].next()
        logits = logits_from_features(model, run.train_stores[task], idx, [task])[task]
        target = torch.as_tensor(run.data[task].train.labels[idx])
        loss = run.weighting(task, run.losses[task](logits, target))
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        run.scheduler.step()
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
        bar.set_postfix(loss=f"{running:.3f}", task=task)
    return running


class WeightAverage:
    """Uniform running mean of the trained weights at the end of epochs (stochastic weight averaging,
    Izmailov et al., 2018): one model, no serving cost, often a flatter and better-generalising optimum."""

    def __init__(self):
        self.state: dict[str, torch.Tensor] = {}
        self.epochs: list[int] = []

    def add(self, epoch: int, state: dict[str, torch.Tensor]) -> None:
        self.epochs.append(epoch)
        for key, value in state.items():
            mean = self.state.get(key)
            self.state[key] = value.clone() if mean is None or not value.is_floating_point() \
                else mean + (value - mean) / len(self.epochs)


def evaluate_epoch(run: TrainingRun, epoch: int | str, loss: float | None) -> dict:
    metrics = dev_metrics(run.model, run.dev_stores, run.data, run.tasks)
    score = selection_score(metrics)
    log.info("epoch %s: loss %s, dev %s, score %.4f", epoch, loss if loss is None else round(loss, 4),
             {t: round(m[PRIMARY_METRIC[t]], 4) for t, m in metrics.items()}, score)
    return {"epoch": epoch, "train_loss": loss, "dev": metrics, "dev_score": score}


def fit(run: TrainingRun) -> tuple[list[dict], dict | None]:
    """Epochs until cfg.epochs or cfg.patience epochs without a better dev score; the model ends with
    the weights of its best epoch, or with the average of epochs >= cfg.average_from when that scores
    better on dev. Returns the per-epoch history and the averaged model's dev entry (None without one)."""
    cfg, history, best, best_state, waited = run.cfg, [], -1.0, None, 0
    average = WeightAverage()
    for epoch in range(1, cfg.epochs + 1):
        entry = evaluate_epoch(run, epoch, train_epoch(run, f"epoch {epoch}/{cfg.epochs}"))
        history.append(entry)
        if cfg.average_from and epoch >= cfg.average_from:
            average.add(epoch, checkpoint.trained_state(run.model))
        if entry["dev_score"] > best:
            best, best_state, waited = entry["dev_score"], copy.deepcopy(checkpoint.trained_state(run.model)), 0
        else:
            waited += 1
            if waited >= cfg.patience:
                log.info("early stop: no dev improvement for %d epochs", waited)
                break
    averaged = None
    if len(average.epochs) > 1:
        checkpoint.load_trained_state(run.model, average.state, "the averaged weights")
        averaged = {**evaluate_epoch(run, f"average of {average.epochs}", None), "epochs": average.epochs}
        averaged["kept"] = averaged["dev_score"] > best
    if not (averaged and averaged["kept"]):
        checkpoint.load_trained_state(run.model, best_state, "the best epoch's weights")
    return history, averaged


def calibrate(model: MultiTaskModel, stores: dict[str, FeatureStore], data: dict[str, TaskData],
              tasks: list[str]) -> dict[str, dict[str, float]]:
    """Temperature scaling per head on dev; returns each temperature with the dev ECE before and after."""
    report = {task: calibration(store_logits(model, stores[task], task), data[task].dev.labels) for task in tasks}
    for task, result in report.items():
        model.config.head(task).temperature = result["temperature"]
    return report


def fit_training_scope(encoder: SentenceEncoder, data: TaskData) -> ScopeDetector:
    """A built-in task's out-of-scope detector (ScopeDetector.fit_knn): k-NN on the shown embedding against
    its training sentences, threshold accepting DEV_RECALL of its dev sentences. Only in-scope data is fitted."""
    train, dev = data.train, data.dev
    fitted_on = (f"reference: the {len(train):,} {data.name} training sentences; threshold: {DEV_RECALL:.1%} of the "
                 f"{len(dev):,} {data.name} dev sentences accepted (method chosen on Banking77 dev + CLINC150 dev)")
    return ScopeDetector.fit_knn(encoder.encode(train.texts, batch_size=64), list(train.texts),
                                 [data.label_names[i] for i in train.labels], encoder.encode(dev.texts, batch_size=64),
                                 fitted_on, data.name)


def saved_config(cfg: TrainConfig) -> dict:
    """The settings as a run records them: without the data folder, a fact of the machine it ran on (the data
    itself is pinned by the checksums of `python -m mtl_core data prepare`), so a config file read again
    takes the data from $MTL_DATA_DIR or data/."""
    return {k: v for k, v in asdict(cfg).items() if k != "data_dir"}


def train(cfg: TrainConfig, encoder: SentenceEncoder | None = None) -> dict:
    """Train, calibrate and save a checkpoint to cfg.output with train_config.json and metrics.json."""
    torch.manual_seed(cfg.seed)
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps(saved_config(cfg), indent=2) + "\n")
    started = time.perf_counter()
    run = prepare(cfg, encoder or SentenceEncoder.load(cfg.backbone))
    feature_seconds = time.perf_counter() - started
    history, averaged = fit(run)
    best_epoch = max(history, key=lambda h: h["dev_score"])
    kept = averaged if averaged and averaged["kept"] else best_epoch
    model, tasks = run.model, run.tasks
    calibration = calibrate(model, run.dev_stores, run.data, tasks) if cfg.calibrate else {}
    for task in set(tasks) - set(cfg.freeze):  # a frozen head keeps what it had (trained from --init-checkpoint, or not)
        model.config.head(task).trained = True
    model.config.extra = {"trained_tasks": tasks, "train_config": saved_config(cfg)}
    scoped = SCOPED_TASK.name
    scope = fit_training_scope(model.encoder, run.data[scoped]) if cfg.fit_scope else None
    checkpoint.save(model, out, {scoped: scope} if scope else None)
    metrics = {"best_epoch": best_epoch["epoch"], "dev": kept["dev"], "dev_score": kept["dev_score"],
               "history": history, "weight_average": averaged, "calibration": calibration,
               "scope": model.config.head(scoped).scope, "task_probabilities": run.probs, "steps_per_epoch": run.steps,
               "train_rows": {t: len(run.data[t].train) for t in tasks},
               "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
               "uncertainty_log_vars": ({t: v.item() for t, v in run.weighting.log_vars.items()}
                                        if run.weighting.learned else None),
               "wall_seconds": {"features": feature_seconds, "total": time.perf_counter() - started},
               "torch_threads": torch.get_num_threads()}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
