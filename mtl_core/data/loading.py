"""Loading the real task data (Banking77 intents, SemEval 4A sentiment, CLINC150 out-of-scope) from a
data folder. The one reader of the data CSVs; every other module and script goes through it.

Layout expected under the data folder (built by `python -m mtl_core data prepare`, originals.py), one folder
per built-in task (tasks/definitions.py):
  intent/{train,test}.csv + labels.json        (no official dev split: carved here, stratified, seeded)
  sentiment/{train,dev,test}.csv + labels.json
  oos/{train,dev,test}.csv                     (optional: requests that are none of the 77 intents)
CSV columns: text,label.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from mtl_core.tasks.definitions import BUILTIN_NAMES, BUILTIN_TASKS, task_definition

TASKS = BUILTIN_NAMES  # the tasks a data folder holds
INTENT_DEV_SEED = 0  # the intent dev split is carved from train with this seed, everywhere


class DataError(ValueError):
    """The data folder is missing a file or holds rows that do not fit; the message says which and how to fix it."""


@dataclass
class Split:
    texts: list[str]
    labels: np.ndarray  # (N,) int64 label ids

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx: np.ndarray) -> "Split":
        return Split([self.texts[i] for i in idx], self.labels[idx])


@dataclass
class TaskData:
    name: str
    label_names: list[str]
    train: Split
    dev: Split
    test: Split


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """The rows of a data CSV (header `text,label`, or any header with a `text` column) as dicts."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found; is the data folder (--data-dir or MTL_DATA_DIR) the one holding "
                        "intent/, sentiment/ and oos/?")
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def read_texts(path: str | Path) -> list[str]:
    return [row["text"] for row in read_rows(path)]


def read_labels(folder: Path) -> list[str]:
    path = folder / "labels.json"
    if not path.is_file():
        if not folder.parent.is_dir():
            raise DataError(f"no data folder at {folder.parent}: build it with `python -m mtl_core data prepare "
                            "--out data` (README), or point MTL_DATA_DIR or --data-dir at one")
        raise DataError(f"{path} not found; is the data folder (--data-dir or MTL_DATA_DIR) the one holding "
                        "intent/ and sentiment/?")
    return json.loads(path.read_text(encoding="utf-8"))


def builtin_labels(data_dir: str | Path) -> dict[str, list[str]]:
    """Each built-in task's label ids from the data folder (what untrained heads of them need)."""
    return {task.name: read_labels(Path(data_dir) / task.folder) for task in BUILTIN_TASKS}


def read_split(path: Path, label_names: list[str]) -> Split:
    index = {name: i for i, name in enumerate(label_names)}
    rows = read_rows(path)
    unknown = {r["label"] for r in rows} - set(index)
    if unknown:
        raise DataError(f"{path} has labels not in labels.json: {sorted(unknown)[:5]}")
    return Split([r["text"] for r in rows], np.array([index[r["label"]] for r in rows], dtype=np.int64))


def stratified_subsample(split: Split, size: int | None, seed: int) -> Split:
    """A stratified, seeded subset of `size` rows (all rows when size is None or too big)."""
    if size is None or size >= len(split):
        return split
    idx, _ = train_test_split(np.arange(len(split)), train_size=size, stratify=split.labels, random_state=seed)
    return split.subset(np.sort(idx))


def load_task(data_dir: str | Path, task: str, dev_fraction: float = 0.1, seed: int = INTENT_DEV_SEED) -> TaskData:
    """Train/dev/test of one built-in task. Without a dev.csv (intent), dev = a stratified `dev_fraction` of
    train (seeded)."""
    folder = Path(data_dir) / task_definition(task).folder
    label_names = read_labels(folder)
    train = read_split(folder / "train.csv", label_names)
    test = read_split(folder / "test.csv", label_names)
    if (folder / "dev.csv").is_file():
        dev = read_split(folder / "dev.csv", label_names)
    else:
        dev_size = max(round(dev_fraction * len(train)), len(label_names))  # >= one row per class
        train_idx, dev_idx = train_test_split(np.arange(len(train)), test_size=dev_size,
                                              stratify=train.labels, random_state=seed)
        train, dev = train.subset(np.sort(train_idx)), train.subset(np.sort(dev_idx))
    return TaskData(task, label_names, train, dev, test)
