"""One typed prediction per sentence, built in one place and written out in every shape callers need:
the API's JSON record, the app's table row and the CSV row of the predict command and the downloads.

Task names and label lists come from the results (the checkpoint's head configs), so a third head
appears in all three writers without edits here.
"""
from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtl_core.serving.inputs import Row, spreadsheet_safe

TOP_K = 5  # labels listed per task; a head with at most this many labels lists all of them as `probs`
# The `<task>` cell of an out-of-scope sentence in the CSV downloads and the bulk Parquet: the app's word for it
# ("— none (closest: Card arrival)") without the dash and the closest label, which has its own column
# `<task>_closest`: one lowercase word that a filter or a spreadsheet formula can test for.
NONE_LABEL = "none"
# An input column that the predict (or bulk) output carries through under the name of one of its own columns
# (`text`, `intent`, bulk's `id`, ...) gets this prefix, as often as needed to make its name unique.
INPUT_PREFIX = "input_"
WORD_CASE = {"atm": "ATM", "pin": "PIN", "id": "ID", "apple": "Apple", "google": "Google",
             "visa": "Visa", "mastercard": "Mastercard"}


def readable_label(label: str) -> str:
    """'card_arrival' -> 'Card arrival', 'atm_support' -> 'ATM support', 'negative' -> 'Negative'; a label
    with spaces is a person's own wording (a task from examples) and stays as written."""
    if any(c.isspace() for c in label):
        return label
    words = [WORD_CASE.get(w.lower(), w.lower()) for w in label.split("_") if w]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def lists_every_label(num_labels: int) -> bool:
    """Small heads (sentiment) report every label's probability; large ones (intent) their top TOP_K."""
    return num_labels <= TOP_K


@dataclass(frozen=True)
class TaskPrediction:
    """One head's answer for one sentence: the top label, its probability and every label's probability;
    for a head with an out-of-scope detector also whether the sentence is one of its labels at all."""

    label: str
    score: float
    probs: dict[str, float]  # label -> probability, in the head's label order
    in_scope: bool | None = None  # None: this head has no detector
    scope_score: float | None = None  # higher = more like the head's training sentences

    def top(self, k: int = TOP_K) -> list[tuple[str, float]]:
        return sorted(self.probs.items(), key=lambda item: -item[1])[:k]

    @property
    def rejected(self) -> bool:
        """The detector says: none of this head's labels (the top label is only the closest)."""
        return self.in_scope is False

    def shown_label(self) -> str:
        """The label as a person reads it: 'Card arrival', or '— none (closest: Card arrival)'."""
        return f"— none (closest: {readable_label(self.label)})" if self.rejected else readable_label(self.label)

    def to_api(self) -> dict:
        """As the CSV says it (csv_fields, scope_fields): `label` is NONE_LABEL for a rejected sentence, and a
        head with a detector adds `closest` (the top label, on every record), `in_scope` and `scope_score`;
        `score`, `top` and `probs` are the head's probabilities either way."""
        record = {"label": NONE_LABEL if self.rejected else self.label, "score": self.score,
                  "top": [list(p) for p in self.top()]}
        if lists_every_label(len(self.probs)):
            record["probs"] = dict(self.probs)
        if self.in_scope is not None:
            record.update(closest=self.label, in_scope=self.in_scope, scope_score=self.scope_score)
        return record

    def csv_fields(self, task: str) -> dict:
        """`<task>`: the label, or NONE_LABEL when the detector rejects the sentence (the app's "— none");
        `<task>_score`: the top label's probability either way (of the closest label when rejected)."""
        fields = {task: NONE_LABEL if self.rejected else self.label, f"{task}_score": round(self.score, 4)}
        if lists_every_label(len(self.probs)):
            fields.update({f"{task}_{label}": round(p, 4) for label, p in self.probs.items()})
        return fields

    def scope_fields(self, task: str) -> dict:
        """For a head with a detector: `<task>_closest`, the top label on every row (the same as `<task>` when
        in scope: one column to read whatever the verdict), `<task>_in_scope` (1/0), `<task>_scope_score`."""
        if self.in_scope is None:
            return {}
        return {f"{task}_closest": self.label, f"{task}_in_scope": int(self.in_scope),
                f"{task}_scope_score": round(self.scope_score, 4)}


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
            cells += [p.shown_label(), round(p.score, 3)]
        return cells

    def csv_row(self) -> dict:
        """The text, whether it was cut at the token limit (1/0), no `error`, each task's columns, then the scope
        columns (so the columns before them never move). A row that could not be scored: error_row."""
        row = {"text": self.text, "truncated": int(self.truncated), "error": None}
        for task, p in self.tasks.items():
            row.update(p.csv_fields(task))
        for task, p in self.tasks.items():
            row.update(p.scope_fields(task))
        return row

    def summary(self) -> str:
        """'intent: Card arrival (0.93) · sentiment: Negative (0.71)', for hovers."""
        return " · ".join(f"{t}: {p.shown_label()} ({p.score:.2f})" for t, p in self.tasks.items())


def csv_columns(labels: Mapping[str, list[str]], scoped: Sequence[str] = ()) -> list[str]:
    """The CSV header: text, truncated (1/0), error (empty when the row was scored), each task's columns, then
    `<task>_closest`, `<task>_in_scope` (1/0), `<task>_scope_score` for the heads in `scoped` (those with an
    out-of-scope detector)."""
    columns = ["text", "truncated", "error"]
    for task, names in labels.items():
        columns += [task, f"{task}_score"]
        if lists_every_label(len(names)):
            columns += [f"{task}_{label}" for label in names]
    for task in scoped:
        columns += [f"{task}_closest", f"{task}_in_scope", f"{task}_scope_score"]
    return columns


def carried_names(columns: Sequence[str], taken: Sequence[str]) -> list[str]:
    """The output names of an input's other columns, in their order: each keeps its name unless one of the
    output's own columns (`taken`) or an earlier carried column has it; then it gets INPUT_PREFIX, again until
    the name is free (`text` -> `input_text`; with an `input_text` column in the input too: `input_input_text`).
    Nothing is ever overwritten."""
    taken, given, names = set(taken), set(columns), []
    for name in columns:
        if name in taken or name in names:
            name = INPUT_PREFIX + name
            while name in taken or name in given or name in names:
                name = INPUT_PREFIX + name
        names.append(name)
    return names


def task_prediction(probs: np.ndarray, labels: list[str], scope_score: float | None = None,
                    threshold: float | None = None) -> TaskPrediction:
    best = int(np.argmax(probs))
    in_scope = None if scope_score is None else bool(scope_score >= threshold)
    return TaskPrediction(labels[best], float(probs[best]), dict(zip(labels, map(float, probs), strict=True)),
                          in_scope, scope_score)


def predictions(results) -> list[Prediction]:
    """The typed predictions of one pass (a serving.predictor.Results, read by its fields only, so that records
    needs no import of the predictor, which imports records): the only place they are built."""
    found = []
    for i, text in enumerate(results.texts):
        tasks = {}
        for task, names in results.labels.items():
            scope = results.scopes.get(task)
            tasks[task] = task_prediction(results.probs[task][i], names,
                                          None if scope is None else float(results.scope_scores[task][i]),
                                          None if scope is None else scope.threshold)
        found.append(Prediction(text, tasks, bool(results.truncated[i])))
    return found


def output_rows(inputs: Sequence[Row], found: Sequence[Prediction]) -> list[dict]:
    """One CSV row per input row, in order (the predict command's and bulk's): `found` holds the predictions
    of the rows without an error, in their order; a row with an error has its text and `error` only, every
    prediction column empty."""
    if len(found) != sum(r.error is None for r in inputs):
        raise ValueError(f"{len(found)} predictions for {sum(r.error is None for r in inputs)} rows without an error")
    scored = iter(found)
    return [next(scored).csv_row() if r.error is None else {"text": r.text, "error": r.error} for r in inputs]


def write_csv(rows: list[Prediction], labels: Mapping[str, list[str]], path: str | Path,
              scoped: Sequence[str] = (), other_columns: Sequence[str] = (),
              other_values: Sequence[Sequence] | None = None, inputs: Sequence[Row] | None = None) -> None:
    """The predictions as CSV with csv_columns(labels, scoped): the predict command's output and the app's
    download. `inputs`: the input rows, when some could not be scored (output_rows). `other_columns`: the
    input's columns besides its text, carried through before the prediction columns (named by carried_names),
    with `other_values[i]` the values of row i. Any text that a spreadsheet would run as a formula, carried
    cells included, is written as text (inputs.spreadsheet_safe)."""
    columns = csv_columns(labels, scoped)
    names = carried_names(other_columns, columns)
    records = output_rows(inputs, rows) if inputs is not None else [p.csv_row() for p in rows]
    values = other_values if other_values is not None else [()] * len(records)
    if len(values) != len(records):
        raise ValueError(f"{len(values)} rows of input columns for {len(records)} predictions")
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=names + columns)
        writer.writeheader()
        for record, carried in zip(records, values, strict=True):
            row = {**dict(zip(names, carried, strict=True)), **record}
            writer.writerow({k: spreadsheet_safe(v) for k, v in row.items()})
