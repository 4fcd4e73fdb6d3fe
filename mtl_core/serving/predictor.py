"""Predictor: sentences in, numpy embeddings, probabilities and typed predictions out.

One encoder pass per batch feeds every head; a per-sentence cache (the app's) lets the same sentence
skip the model the next time any endpoint sees it.
"""
from __future__ import annotations

import hashlib
import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

from mtl_core.errors import InputError
from mtl_core.model.encoder import SentenceEncoder, check_sentences
from mtl_core.model.explain import DEFAULT_METHOD, Explanation, explain
from mtl_core.model.model import MultiTaskModel
from mtl_core.serving.records import Prediction, csv_columns, predictions
from mtl_core.settings import DEFAULT_CHECKPOINT
from mtl_core.tasks import checkpoint
from mtl_core.tasks.definitions import builtin_heads
from mtl_core.tasks.fewshot import ExampleTask, TaskReport, fit_task
from mtl_core.tasks.improve import Improver, ImproveSettings, Progress
from mtl_core.tasks.scope import ScopeConfig, ScopeDetector

PROGRESS_THRESHOLD = 256  # show a progress bar from this many sentences on


def check_task_columns(name: str, labels: list[str], existing: Mapping[str, list[str]]) -> None:
    """A new task's output columns must not repeat another's (a task `intent_score`, a label `score`): in a
    record or a CSV row the later one would silently overwrite the earlier. InputError naming the column."""
    columns = csv_columns({**existing, name: labels}, [*existing, name])  # as if every task had a scope
    repeated = sorted(c for c, n in Counter(columns).items() if n > 1)
    if repeated:
        raise InputError(f"the task name {name!r} or one of its labels would make the output column {repeated[0]!r} "
                         "twice; rename the task or the label")


@dataclass(frozen=True)
class Row:
    """One sentence's results: its embedding (H,), each task's probabilities (C,), whether it was cut,
    the scope score of each head with an out-of-scope detector and the vector of each improved head."""

    embedding: np.ndarray
    probs: dict[str, np.ndarray]
    truncated: bool
    scope_scores: dict[str, float]
    head_vectors: dict[str, np.ndarray] = field(default_factory=dict)


def sentence_key(text: str, salt: str = "") -> bytes:
    """A short fixed-size key, so a cache of long sentences stays small; `salt` keeps the rows of a pass with an
    improved session task apart from the plain ones."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16, key=salt.encode()).digest()


class SentenceCache:
    """The most recently used sentences' results, shared by all requests of a server: the same
    sentences sent to /predict, then /similarity and /projection, or analysed again, skip the model.
    About 2 kB per sentence. Safe to use from several request threads."""

    def __init__(self, max_items: int = 10_000):
        self.max_items = max_items
        self._rows: OrderedDict[bytes, Row] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    def lookup(self, keys: list[bytes]) -> dict[bytes, Row]:
        """The rows of the keys (from sentence_key) that are cached."""
        found = {}
        with self._lock:
            for key in keys:
                if key in self._rows:
                    self._rows.move_to_end(key)
                    found[key] = self._rows[key]
        return found

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def store(self, rows: dict[bytes, Row]) -> None:
        with self._lock:
            for key, row in rows.items():
                self._rows[key] = row
                self._rows.move_to_end(key)
            while len(self._rows) > self.max_items:
                self._rows.popitem(last=False)


@dataclass
class Results:
    """One encoder pass over N sentences: embeddings (N, H), per-task probabilities (N, C), truncation
    flags (N,) and, for each head with an out-of-scope detector, its scope scores (N,) and settings."""

    texts: list[str]
    embeddings: np.ndarray
    probs: dict[str, np.ndarray]
    labels: dict[str, list[str]]
    truncated: np.ndarray
    scope_scores: dict[str, np.ndarray] = field(default_factory=dict)
    scopes: dict[str, ScopeConfig] = field(default_factory=dict)
    head_vectors: dict[str, np.ndarray] = field(default_factory=dict)  # an improved task's own vectors (N, H)

    def vectors(self, task: str) -> np.ndarray:
        """What `task`'s head and detector read (N, H): its own vectors when improved, else the embeddings."""
        return self.head_vectors.get(task, self.embeddings)

    @property
    def scoped_heads(self) -> list[str]:
        """The heads with an out-of-scope decision."""
        return list(self.scopes)

    def row(self, i: int) -> Row:
        return Row(self.embeddings[i].copy(), {t: p[i].copy() for t, p in self.probs.items()},
                   bool(self.truncated[i]), {t: float(s[i]) for t, s in self.scope_scores.items()},
                   {t: v[i].copy() for t, v in self.head_vectors.items()})

    def with_rows(self, texts: list[str], rows: list[Row]) -> "Results":
        """Results of `texts` from one Row each (at least one), with this pass's labels and scope settings."""
        probs = {t: np.stack([r.probs[t] for r in rows]) for t in self.labels}
        scores = {t: np.array([r.scope_scores[t] for r in rows], dtype=np.float32) for t in self.scopes}
        vectors = {t: np.stack([r.head_vectors[t] for r in rows]) for t in self.head_vectors}
        return Results(texts, np.stack([r.embedding for r in rows]), probs, self.labels,
                       np.array([r.truncated for r in rows], dtype=bool), scores, self.scopes, vectors)

    def with_task(self, task: str, labels: list[str], probs: np.ndarray,
                  scope: ScopeDetector | None = None) -> "Results":
        """These results plus one more task's probabilities (N, C) (and its scope), e.g. a head a user fitted
        on the same embeddings: no encoder pass."""
        results = replace(self, probs={**self.probs, task: probs}, labels={**self.labels, task: labels})
        if scope is not None:
            results.scopes = {**self.scopes, task: scope.config}
            results.scope_scores = {**self.scope_scores, task: scope.scores(self.embeddings)}
        return results

    def with_example_task(self, task: ExampleTask) -> "Results":
        """These results plus a task fitted on examples (a browser session's own): its head on their
        embeddings, no encoder pass (an improved task runs in the pass instead: Predictor.run's `extra`)."""
        if task.improved:
            raise ValueError(f"task {task.name!r} has its own layers: run it in the pass, Predictor.run(..., extra=task)")
        return self.with_task(task.name, task.config.labels, task.probabilities(self.embeddings), task.scope)


class Predictor:
    def __init__(self, model: MultiTaskModel, cache: SentenceCache | None = None,
                 scopes: dict[str, ScopeDetector] | None = None):
        self.model = model.serve()
        self.cache = cache  # the app sets one; batch commands and training read each sentence once
        self.scopes = dict(scopes or {})  # task -> its out-of-scope detector; a task without one always answers

    @classmethod
    def load(cls, checkpoint_dir: str | Path = DEFAULT_CHECKPOINT, backbone: str | None = None,
             device: str = "cpu", precision: str = "fp32") -> "Predictor":
        """Load a trained checkpoint (default: the one shipped in assets/); `backbone` overrides the
        checkpoint's own reference (None: as stored, which is the bundled copy for ours)."""
        encoder = SentenceEncoder.load(backbone or checkpoint.read_config(checkpoint_dir).backbone, device, precision)
        model = checkpoint.load(checkpoint_dir, encoder, device)
        return cls(model, scopes=checkpoint.load_scopes(checkpoint_dir, model.config))

    @classmethod
    def untrained(cls, labels: Mapping[str, list[str]], encoder: SentenceEncoder | None = None) -> "Predictor":
        """The built-in tasks' heads with random weights, flagged untrained (callers must say so when showing
        output); `labels`: task name -> label ids (data.loading.builtin_labels reads them from a data folder)."""
        encoder = encoder or SentenceEncoder.load()
        return cls(MultiTaskModel.build(encoder, builtin_heads(labels)))

    @property
    def trained(self) -> bool:
        return self.model.config.trained

    @property
    def encoder(self) -> SentenceEncoder:
        return self.model.encoder

    @property
    def scoped_heads(self) -> list[str]:
        return list(self.scopes)

    @property
    def tasks(self) -> list[str]:
        return self.model.task_names

    @property
    def labels(self) -> dict[str, list[str]]:
        """Each task's labels, in the order of its probabilities."""
        return self.model.config.labels

    def run(self, sentences: list[str], batch_size: int = 32, show_progress: bool = False,
            extra: ExampleTask | None = None) -> Results:
        """Embeddings and calibrated probabilities for every task, from one encoder pass per batch; `extra`: a
        task of example_task() (a session's own) added to the results, in the same pass when it is improved.

        Each distinct sentence is computed once; with a cache, sentences seen before skip the model.
        """
        texts = check_sentences(sentences)
        in_pass = extra if extra is not None and extra.improved else None
        keys = [sentence_key(t, in_pass.key if in_pass else "") for t in texts]
        known = self.cache.lookup(keys) if self.cache is not None else {}
        todo = {k: t for k, t in zip(keys, texts) if k not in known}  # distinct new sentences, in order
        fresh = self._forward(list(todo.values()), batch_size, show_progress, in_pass)
        whole = len(todo) == len(texts)  # nothing known, no duplicates (or no sentences): the pass is the answer
        if not whole or self.cache is not None:
            rows = {k: fresh.row(i) for i, k in enumerate(todo)}
            if self.cache is not None:
                self.cache.store(rows)
            if not whole:
                rows.update(known)
                fresh = fresh.with_rows(texts, [rows[k] for k in keys])
        return fresh.with_example_task(extra) if extra is not None and in_pass is None else fresh

    @torch.inference_mode()
    def _forward(self, texts: list[str], batch_size: int, show_progress: bool,
                 extra: ExampleTask | None = None) -> Results:
        model, scopes = self.model, self.scopes
        if extra is not None:
            model, scopes = model.with_head(extra.config, extra.head), {**scopes, extra.name: extra.scope}
        n, labels = len(texts), model.config.labels
        embeddings = np.zeros((n, self.encoder.hidden_size), dtype=np.float32)
        probs = {t: np.zeros((n, len(names)), dtype=np.float32) for t, names in labels.items()}
        vectors = {t: np.zeros_like(embeddings) for t in model.own_layer_tasks(model.task_names)}
        tokenized = self.encoder.tokenize_ids(texts)
        for idx, batch in self.encoder.progress_batches(tokenized, batch_size, "predict", show_progress):
            out = model(**batch)
            embeddings[idx] = out.embeddings.float().cpu().numpy()
            for task, logits in out.logits.items():
                probs[task][idx] = model.probabilities(task, logits).cpu().numpy()
            for task, vector in out.head_vectors.items():
                vectors[task][idx] = vector.float().cpu().numpy()
        return Results(texts, embeddings, probs, labels, np.array(tokenized.truncated, dtype=bool),
                       {t: d.scores(vectors.get(t, embeddings)) for t, d in scopes.items()},
                       {t: d.config for t, d in scopes.items()}, vectors)

    def embed(self, sentences: list[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        """The general-purpose sentence embeddings (N, H): the same pass as run(), so it shares the cache."""
        return self.run(sentences, batch_size, show_progress).embeddings

    def predict(self, sentences: list[str], show_progress: bool = False) -> list[Prediction]:
        return predictions(self.run(sentences, show_progress=show_progress))

    def example_task(self, name: str, texts: list[str], labels: list[str], seed: int = 0,
                     improve: bool | ImproveSettings = False, progress: Progress | None = None) -> ExampleTask:
        """A task fitted on labelled examples, NOT added to this predictor: add it to run()'s results with its
        `extra`, explain it with explain(..., extra=task). What a browser session's task is. `improve`: first
        train the task's own top layers on the examples (tasks/improve.py; True: with the default settings;
        `progress` is told each step)."""
        settings = ImproveSettings() if improve is True else improve or None
        improver = Improver(self.encoder, settings, progress) if settings else None
        return fit_task(name, texts, labels, self.embed, taken=self.tasks, seed=seed,
                        check_outputs=partial(check_task_columns, existing=self.labels), improver=improver)

    def add_task(self, name: str, texts: list[str], labels: list[str], seed: int = 0,
                 improve: bool | ImproveSettings = False, progress: Progress | None = None) -> "TaskReport":
        """A new task from labelled examples (see example_task), served from now on in the same pass as the
        others, with its own out-of-scope detector. Returns the report (cross-validated accuracy, counts,
        confusions); InputError for unusable examples."""
        task = self.example_task(name, texts, labels, seed, improve, progress)
        self.model.add_head(task.config, task.head)
        self.scopes[name] = task.scope
        if self.cache is not None:
            self.cache.clear()  # cached rows lack the new task
        return task.report

    def explain(self, sentences: list[str], task: str, label: str | None = None,
                method: str = DEFAULT_METHOD, extra: ExampleTask | None = None) -> list[Explanation]:
        """A score per word of each sentence for `task`'s `label` (None: the predicted one): > 0 pushes
        towards it; `extra`: a task of example_task() that `task` may name. Methods and their measured
        faithfulness: mtl_core/model/explain.py, benchmarks/explain.py."""
        model = self.model if extra is None else self.model.with_head(extra.config, extra.head)
        return explain(model, self.encoder, sentences, task, label, method)
