"""The app's public API as plain functions, free of Gradio: each endpoint takes the text (one sentence
per line) and a few options and returns JSON-friendly data, or raises InputError with the reason.

ui/ registers these same methods as the named endpoints /analyse, /predict, /embed, /similarity,
/projection, /search, /explain and /task_predict; tests call them directly. The rest of Service is what
the UI's handlers need, so ui/ talks to the model only through it.
"""
from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from mtl_core.model.explain import Explanation
from mtl_core.serving.analysis import HEATMAP_MAX, SEARCH_K, Analysis, Hit, MapView, Session, map_view, search
from mtl_core.serving.inputs import (
    InputError,
    check_length,
    clean_text,
    examples_from_file,
    examples_from_lines,
    sentences_from_file,
    sentences_from_text,
    write_examples,
)
from mtl_core.serving.predictor import Predictor
from mtl_core.serving.reference import Neighbour, ReferenceBuilder
from mtl_core.serving.similarity import ROW_ORDERS, cosine_similarity, row_order
from mtl_core.settings import Settings
from mtl_core.tasks.fewshot import ExampleTask

log = logging.getLogger(__name__)
EXPLAIN_MAX = 20  # sentences per /explain request: each costs one batch of its leave-one-word-out variants
DOWNLOAD_MAX_AGE_S = 600  # Gradio copies returned files into its own cache at once; ours can go soon
# The sessions' own tasks: ~3 kB per example (its embedding in the out-of-scope detector, and in the head
# for k-NN), so these caps bound them at ~300 MB whatever the number of visitors (TaskStore)
STORED_EXAMPLES_MAX = 100_000
STORED_TASKS_MAX = 64
DEFAULT_TASK_NAME = "yours"


def check_order(order: str) -> None:
    """Checked before the model runs, so a bad option costs nothing; viz.row_order applies it."""
    if order not in ROW_ORDERS:
        raise InputError(f"order must be 'input' or 'cluster', got {order!r}")


def check_dims(dims: int) -> None:
    if dims not in (2, 3):
        raise InputError(f"dims must be 2 or 3, got {dims!r}")


def guarded(view: str, build: Callable, *args) -> tuple:
    """(build(*args), None), or (None, message) when that one view fails: the error is logged and the
    request still returns every other view."""
    try:
        return build(*args), None
    except Exception:  # noqa: BLE001 - any bug in one view must not cost the user the others
        log.exception("the %s view failed", view)
        return None, (f"The {view} could not be computed (an internal error, logged on the server); "
                      "the other results are complete.")


def similarity_payload(texts: list[str], embeddings: np.ndarray, order: str) -> dict:
    similarity = cosine_similarity(embeddings)
    idx = [int(i) for i in row_order(similarity, order)]
    return {"texts": [texts[i] for i in idx], "order": idx,
            "matrix": similarity[idx][:, idx].astype(float).round(4).tolist()}


class Downloads:
    """Scratch folders for the files a request offers, under one fixed root shared by all app processes
    (so restarts leave nothing behind); folders older than DOWNLOAD_MAX_AGE_S are pruned on each use."""

    def __init__(self) -> None:
        self._root = Path(tempfile.gettempdir()) / "mtl_app_downloads"
        self._root.mkdir(exist_ok=True)

    def new_folder(self) -> Path:
        cutoff = time.time() - DOWNLOAD_MAX_AGE_S
        for old in self._root.iterdir():
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(dir=self._root))


class TaskStore:
    """The browser sessions' own tasks, each under a random token that only its session holds, so one
    visitor's task never reaches another's results. Bounded: beyond STORED_TASKS_MAX tasks or
    STORED_EXAMPLES_MAX examples in all, the least recently used task is dropped (its session is told to
    build it again)."""

    def __init__(self, max_tasks: int = STORED_TASKS_MAX, max_examples: int = STORED_EXAMPLES_MAX):
        self.max_tasks, self.max_examples = max_tasks, max_examples
        self._tasks: OrderedDict[str, ExampleTask] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def examples(self) -> int:
        return sum(len(t.scope.texts) for t in self._tasks.values())

    def put(self, task: ExampleTask, replacing: str | None = None) -> str:
        token = secrets.token_urlsafe(16)
        with self._lock:
            self._tasks.pop(replacing or "", None)
            self._tasks[token] = task
            while len(self._tasks) > self.max_tasks or (len(self._tasks) > 1 and self.examples > self.max_examples):
                self._tasks.popitem(last=False)
        return token

    def get(self, token: str | None) -> ExampleTask | None:
        with self._lock:
            task = self._tasks.get(token or "")
            if task is not None:
                self._tasks.move_to_end(token)
            return task

    def drop(self, token: str | None) -> None:
        with self._lock:
            self._tasks.pop(token or "", None)


class Service:
    """The model, the reference map and the request limits behind every endpoint."""

    def __init__(self, predictor: Predictor, builder: ReferenceBuilder | None = None, settings: Settings | None = None):
        self.predictor = predictor
        self.builder = builder
        self.settings = settings or Settings()
        self.downloads = Downloads()
        self.task_store = TaskStore()

    @property
    def labels(self) -> dict[str, list[str]]:
        """The checkpoint's tasks and their labels (a session's own task comes on top)."""
        return self.predictor.labels

    @property
    def max_tokens(self) -> int:
        return self.predictor.encoder.max_tokens

    @property
    def reference_status(self) -> str:
        return self.builder.status if self.builder else "no reference map configured"

    def sentences(self, text: str | None) -> list[str]:
        return sentences_from_text(text, self.settings.max_sentences, self.settings.max_chars)

    def run(self, text: str | None, task: ExampleTask | None = None) -> Analysis:
        """Read the text within the limits and run the model once."""
        return self.run_sentences(self.sentences(text), task)

    def run_sentences(self, sentences: list[str], task: ExampleTask | None = None) -> Analysis:
        return Analysis.run(self.predictor, sentences, task)

    # ---- a task of one's own ---------------------------------------------------------------------------

    def fit_examples(self, texts: list[str], labels: list[str], name: str | None = None) -> ExampleTask:
        return self.predictor.example_task((name or "").strip() or DEFAULT_TASK_NAME, texts, labels)

    def task_from_lines(self, examples: str, name: str | None = None) -> ExampleTask:
        """A task from `label: example` lines (InputError with the reason when they cannot make one)."""
        return self.fit_examples(*examples_from_lines(check_length(examples or "", self.settings.max_chars)), name)

    def task_from_file(self, path: str, name: str | None = None, allowed_folder: str | Path | None = None) -> ExampleTask:
        return self.fit_examples(*examples_from_file(path, allowed_folder), name)

    def task_file(self, task: ExampleTask) -> Path:
        """The task's examples as a .csv that task_from_file reads back (the same task, refitted)."""
        path = self.downloads.new_folder() / f"examples_{task.name}.csv"
        write_examples(*task.examples(), path)
        return path

    # ---- what the UI's views need ----------------------------------------------------------------------

    def map_of(self, session: Session, dims: int, use_reference: bool) -> MapView:
        return session.map(dims, self.builder, use_reference)

    def neighbours(self, session: Session, i: int) -> dict[str, list[Neighbour]]:
        return session.neighbours(i, self.builder)

    def explanation(self, text: str, task: str, label: str | None = None,
                    extra: ExampleTask | None = None) -> Explanation:
        [found] = self.predictor.explain([text], task, label, extra=extra)
        return found

    # ---- the endpoints ---------------------------------------------------------------------------

    def analyse(self, text: str, order: str = "input", dims: int = 2, reference: bool = True) -> dict:
        """The Analyse button in one call and one model pass: {"predictions": as /predict,
        "similarity": as /similarity for the first HEATMAP_MAX sentences (what the heatmap draws),
        "projection": as /projection}."""
        check_order(order)
        check_dims(dims)
        analysis = self.run(text)
        texts, embeddings = analysis.texts, analysis.embeddings
        similarity, similarity_error = guarded("similarity", similarity_payload, texts[:HEATMAP_MAX],
                                               embeddings[:HEATMAP_MAX], order)
        projection, projection_error = guarded("projection", self.projection_payload, texts, embeddings, dims,
                                               reference)
        return {"predictions": [p.to_api() for p in analysis.predictions],
                "similarity": similarity or {"error": similarity_error},
                "projection": projection or {"error": projection_error}}

    def predict(self, text: str) -> list[dict]:
        """Every head's answer for each sentence (one per line): a record per sentence with each task's
        label, its probability, the top labels (every label's probability for small heads) and whether
        the sentence was truncated."""
        return [p.to_api() for p in self.run(text).predictions]

    def embed(self, text: str) -> dict:
        """Unit-length sentence embeddings: {"texts": [...], "embeddings": [[...384 floats], ...]}."""
        sentences = self.sentences(text)
        return {"texts": sentences, "embeddings": self.predictor.embed(sentences).tolist()}

    def similarity(self, text: str, order: str = "input") -> dict:
        """Cosine similarity matrix of all pairs: {"texts", "matrix"}, rows in `order`
        ("input", or "cluster": average-linkage leaf order), with "order" giving the input indices."""
        check_order(order)
        sentences = self.sentences(text)
        return similarity_payload(sentences, self.predictor.embed(sentences), order)

    def projection(self, text: str, dims: int = 2, reference: bool = True) -> dict:
        """2-D or 3-D coordinates of each sentence and the method that produced them (on the reference
        map when `reference` is true and the map is ready; the "method" says which)."""
        check_dims(dims)
        sentences = self.sentences(text)
        return self.projection_payload(sentences, self.predictor.embed(sentences), dims, reference)

    def explain(self, text: str, task: str = "intent", label: str = "") -> list[dict]:
        """Why each sentence (one per line, at most EXPLAIN_MAX) gets `task`'s label (a task of /predict's
        records: "intent", "sentiment"), or the label asked for (a label id such as "card_arrival"; empty:
        the predicted one): [{"text", "task", "label", "probability", "method", "unit", "truncated", "words": [{"word",
        "start", "end", "score"}]}]; a score > 0 pushes towards the label."""
        sentences = self.sentences(text)
        if len(sentences) > EXPLAIN_MAX:
            raise InputError(f"/explain takes at most {EXPLAIN_MAX} sentences per request, got {len(sentences):,}")
        try:
            found = self.predictor.explain(sentences, task, label or None)
        except ValueError as err:  # an unknown task or label: the message lists the valid ones
            raise InputError(str(err)) from err
        return [e.to_api() for e in found]

    def task_predict(self, text: str, examples: str, name: str = DEFAULT_TASK_NAME) -> dict:
        """A task of your own, statelessly: `examples` are `label: example` lines (at least 2 labels with
        2 examples each); each sentence of `text` (one per line) gets every task's answer, yours included,
        from one pass: {"task": the report (method, cross-validated accuracy, counts, confusions, scope
        threshold), "predictions": as /predict with one more task}. Nothing is kept on the server."""
        sentences = self.sentences(text)
        task = self.task_from_lines(examples, name)
        return {"task": task.report.to_dict(),
                "predictions": [p.to_api() for p in self.run_sentences(sentences, task).predictions]}

    def search(self, text: str, query: str = "", k: int = SEARCH_K) -> list[dict]:
        """The k sentences most similar to `query`, among the text's sentences (one per line) and, once it
        is ready, the reference set: [{"cosine", "source" ("yours" or "reference"), "index", "text",
        "labels"}], most similar first."""
        return [asdict(hit) for hit in self.search_hits(self.run(text), query, k)]

    def search_hits(self, analysis: Analysis, query: str, k: int = SEARCH_K) -> list[Hit]:
        query = clean_text(query or "").strip()
        if not query:
            raise InputError("the search query is empty: type a sentence to look for")
        if not 1 <= k <= 100:
            raise InputError(f"k must be between 1 and 100, got {k!r}")
        ref = self.builder.map if self.builder else None
        return search(analysis, ref.refset if ref else None, ref.embeddings if ref else None,
                      self.predictor.embed([query])[0], k)

    def write_downloads(self, analysis: Analysis) -> list[Path]:
        return analysis.write_downloads(self.downloads.new_folder())

    def load_file(self, path: str, allowed_folder: str | Path | None = None) -> dict:
        """The sentences of an uploaded .txt (one per line) or .csv (a `text` column):
        {"sentences": [...], "text": one per line, "message": what was read}."""
        sentences = sentences_from_file(path, allowed_folder, self.settings.max_sentences)
        return {"sentences": sentences, "text": "\n".join(sentences),
                "message": f"Loaded {len(sentences):,} sentence{'s' if len(sentences) != 1 else ''} from {Path(path).name}."}

    def projection_payload(self, texts: list[str], embeddings: np.ndarray, dims: int, reference: bool) -> dict:
        view = map_view(embeddings, dims, self.builder, reference)
        return {"texts": texts, "coords": view.projection.coords.astype(float).round(4).tolist(),
                "method": view.projection.method, "note": view.note}
