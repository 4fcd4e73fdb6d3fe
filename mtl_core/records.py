"""One typed prediction per sentence, built in one place and written out in every shape callers need:
the API's JSON record, the app's table row and the CSV row of the predict command and the downloads.

Task names and label lists come from the results (the checkpoint's head configs), so a third head
appears in all three writers without edits here.
"""
from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .predictor import Results

TOP_K = 5  # labels listed per task; a head with at most this many labels lists all of them as `probs`
WORD_CASE = {"atm": "ATM", "pin": "PIN", "id": "ID", "apple": "Apple", "google": "Google",
             "visa": "Visa", "mastercard": "Mastercard"}


def readable_label(label: str) -> str:
    """'card_arrival' -> 'Card arrival', 'atm_support' -> 'ATM support', 'negative' -> 'Negative'."""
    words = [WORD_CASE.get(w.lower(), w.lower()) for w in label.split("_") if w]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def lists_every_label(num_labels: int) -> bool:
    """Small heads (sentiment) report every label's probability; large ones (intent) their top TOP_K."""
    return num_labels <= TOP_K


@dataclass(frozen=True)
class TaskPrediction:
    """One head's answer for one sentence: the top label, its probability and every label's probability."""

    label: str
    score: float
    probs: dict[str, float]  # label -> probability, in the head's label order

    def top(self, k: int = TOP_K) -> list[tuple[str, float]]:
        return sorted(self.probs.items(), key=lambda item: -item[1])[:k]

    def to_api(self) -> dict:
        record = {"label": self.label, "score": self.score, "top": [list(p) for p in self.top()]}
        if lists_every_label(len(self.probs)):
            record["probs"] = dict(self.probs)
        return record

    def csv_fields(self, task: str) -> dict:
        fields = {task: self.label, f"{task}_score": round(self.score, 4)}
        if lists_every_label(len(self.probs)):
            fields.update({f"{task}_{label}": round(p, 4) for label, p in self.probs.items()})
        return fields


@dataclass(frozen=True)
class Prediction:
    """Every task's answer for one sentence, and whether the sentence was cut at the token limit."""

    text: str
    tasks: dict[str, TaskPrediction]
    truncated: bool

    def __getitem__(self, task: str) -> TaskPrediction:
        return self.tasks[task]

    def to_api(self) -> dict:
        """The JSON record of /predict and /analyse: label ids as in the data (`card_arrival`)."""
        return {"text": self.text, **{t: p.to_api() for t, p in self.tasks.items()}, "truncated": self.truncated}

    def table_row(self, number: int) -> list:
        """The app's table: number, sentence, then each task's readable label and confidence."""
        cells: list = [number, self.text]
        for p in self.tasks.values():
            cells += [readable_label(p.label), round(p.score, 3)]
        return cells

    def csv_row(self) -> dict:
        row = {"text": self.text}
        for task, p in self.tasks.items():
            row.update(p.csv_fields(task))
        return row

    def summary(self) -> str:
        """'intent: Card arrival (0.93) · sentiment: Negative (0.71)', for hovers."""
        return " · ".join(f"{t}: {readable_label(p.label)} ({p.score:.2f})" for t, p in self.tasks.items())


def table_headers(labels: Mapping[str, list[str]]) -> list[str]:
    headers = ["#", "sentence"]
    for task in labels:
        headers += [task, f"{task} confidence"]
    return headers


def csv_columns(labels: Mapping[str, list[str]]) -> list[str]:
    columns = ["text"]
    for task, names in labels.items():
        columns += [task, f"{task}_score"]
        if lists_every_label(len(names)):
            columns += [f"{task}_{label}" for label in names]
    return columns


def task_prediction(probs: np.ndarray, labels: list[str]) -> TaskPrediction:
    best = int(np.argmax(probs))
    return TaskPrediction(labels[best], float(probs[best]), dict(zip(labels, map(float, probs), strict=True)))


def predictions(results: "Results") -> list[Prediction]:
    """The typed predictions of one pass: the only place they are built."""
    return [Prediction(text, {t: task_prediction(results.probs[t][i], names) for t, names in results.labels.items()},
                       bool(results.truncated[i]))
            for i, text in enumerate(results.texts)]


def write_csv(rows: list[Prediction], labels: Mapping[str, list[str]], path: str | Path) -> None:
    """The predictions as CSV with csv_columns(labels): the predict command's output and the app's download."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=csv_columns(labels))
        writer.writeheader()
        writer.writerows(p.csv_row() for p in rows)
