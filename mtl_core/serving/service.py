"""The app's public API as plain functions, free of Gradio: each endpoint takes the text (one sentence
per line) and a few options and returns JSON-friendly data, or raises InputError with the reason.

ui/ registers these same methods as the named endpoints /analyse, /predict, /embed, /similarity,
/projection, /search, /explain and /task_predict; tests call them directly. The rest of Service is what
the UI's handlers need, so ui/ talks to the model only through it, and imports from here the types of what
it takes and returns (__all__).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from mtl_core.errors import InputError
from mtl_core.model.explain import Explanation
from mtl_core.serving.analysis import HEATMAP_MAX, PREVIEW_DIMS, Analysis
from mtl_core.serving.downloads import Downloads, write_downloads
from mtl_core.serving.inputs import (
    check_length,
    clean_text,
    examples_from_file,
    examples_from_lines,
    sentences_from_file,
    sentences_from_text,
    write_examples,
)
from mtl_core.serving.maps import MapView, map_view
from mtl_core.serving.predictor import Predictor
from mtl_core.serving.reference import Neighbour, ReferenceBuilder, ReferenceMap
from mtl_core.serving.search import SEARCH_K, Hit, search
from mtl_core.serving.session import Session, TaskStore
from mtl_core.serving.similarity import ROW_ORDERS, cosine_similarity, row_order
from mtl_core.settings import Settings
from mtl_core.tasks.definitions import BUILTIN_NAMES
from mtl_core.tasks.fewshot import ExampleTask
from mtl_core.tasks.improve import Progress

__all__ = ["HEATMAP_MAX", "PREVIEW_DIMS", "Analysis", "ExampleTask", "Hit", "InputError", "MapView", "Neighbour",
           "Service", "Session", "guarded"]

log = logging.getLogger(__name__)
EXPLAIN_MAX = 20  # sentences per /explain request: each costs one batch of its leave-one-word-out variants
DEFAULT_TASK_NAME = "yours"


def check_order(order: str) -> None:
    """Checked before the model runs, so a bad option costs nothing; similarity.row_order applies it."""
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


class Service:
    """The model, the reference map and the request limits behind every endpoint."""

    def __init__(self, predictor: Predictor, builder: ReferenceBuilder | None = None, settings: Settings | None = None):
        self.predictor = predictor
        self.builder = builder
        self.settings = settings or Settings()
        self._downloads = Downloads()
        self._task_store = TaskStore()

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

    @property
    def reference_map(self) -> ReferenceMap | None:
        """The reference map once it is built (None before, or without one)."""
        return self.builder.map if self.builder else None

    @property
    def concurrency(self) -> int:
        """How many model requests run at once (MTL_CONCURRENCY)."""
        return self.settings.concurrency

    def sentences(self, text: str | None) -> list[str]:
        return sentences_from_text(text, self.settings.max_sentences, self.settings.max_chars)

    def run(self, text: str | None) -> Analysis:
        """Read the text within the limits and run the model once."""
        return self.run_sentences(self.sentences(text))

    def run_sentences(self, sentences: list[str], task: ExampleTask | None = None) -> Analysis:
        return Analysis.run(self.predictor, sentences, task)

    # ---- a task of one's own ---------------------------------------------------------------------------

    def fit_examples(self, texts: list[str], labels: list[str], name: str | None = None, improve: bool = False,
                     progress: Progress | None = None) -> ExampleTask:
        """`improve`: train the task's own top layers first (about a minute; tasks/improve.py)."""
        return self.predictor.example_task((name or "").strip() or DEFAULT_TASK_NAME, texts, labels,
                                           improve=improve, progress=progress)

    def task_from_lines(self, examples: str, name: str | None = None, improve: bool = False) -> ExampleTask:
        """A task from `label: example` lines (InputError with the reason when they cannot make one)."""
        lines = check_length(examples or "", self.settings.max_chars)
        return self.fit_examples(*examples_from_lines(lines), name, improve)

    def task_from_file(self, path: str, name: str | None = None, allowed_folder: str | Path | None = None) -> ExampleTask:
        return self.fit_examples(*examples_from_file(path, allowed_folder), name)

    def task_file(self, task: ExampleTask) -> Path:
        """The task's examples as a .csv that task_from_file reads back (the same task, refitted)."""
        path = self._downloads.new_folder() / f"examples_{task.name}.csv"
        write_examples(*task.examples(), path)
        return path

    def task_again(self, task: ExampleTask, name: str | None = None, improve: bool = False,
                   progress: Progress | None = None) -> ExampleTask:
        """The same examples fitted again, under `name` (the one a person typed since, perhaps); `improve`: with
        the task's own top layers trained on them."""
        return self.fit_examples(*task.examples(), name, improve, progress)

    # A session keeps its own task here between its requests, under a token only it holds.

    @property
    def max_stored_tasks(self) -> int:
        return self._task_store.max_tasks

    def task_for(self, token: str | None) -> ExampleTask | None:
        """The session's task (None without a token, or once the store has dropped it)."""
        return self._task_store.get(token)

    def keep_task(self, task: ExampleTask, replacing: str | None = None) -> str:
        """Keep the task for its session (dropping the one under `replacing`); the token to ask for it by."""
        return self._task_store.put(task, replacing=replacing)

    def forget_task(self, token: str | None) -> None:
        self._task_store.drop(token)

    # ---- what the UI's views need ----------------------------------------------------------------------

    def map_of(self, session: Session, dims: int, use_reference: bool) -> MapView:
        return session.map(dims, self.builder, use_reference)

    def neighbours(self, analysis: Analysis, i: int) -> dict[str, list[Neighbour]]:
        return analysis.neighbours(i, self.reference_map)

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

    def explain(self, text: str, task: str = BUILTIN_NAMES[0], label: str = "") -> list[dict]:
        """Why each sentence (one per line, at most EXPLAIN_MAX) gets `task`'s label (a task of /predict's
        records: intent, sentiment, ...; default the first), or the label asked for (a label id such as "card_arrival"; empty:
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

    def task_predict(self, text: str, examples: str, name: str = DEFAULT_TASK_NAME, improve: bool = False) -> dict:
        """A task of your own, statelessly: `examples` are `label: example` lines (at least 2 labels with
        2 examples each); each sentence of `text` (one per line) gets every task's answer, yours included,
        from one pass: {"task": the report (method, cross-validated accuracy, counts, confusions, scope
        threshold), "predictions": as /predict with one more task}. `improve`: train the task's own top
        layers first (about a minute for 770 examples). Nothing is kept on the server."""
        sentences = self.sentences(text)
        task = self.task_from_lines(examples, name, improve)
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
        return search(analysis, self.reference_map, self.predictor.embed([query])[0], k)

    def write_downloads(self, analysis: Analysis) -> list[Path]:
        return write_downloads(analysis, self._downloads.new_folder())

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
