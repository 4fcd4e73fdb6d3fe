"""The app's public API as plain functions, free of Gradio: each endpoint takes the text (one sentence
per line) and a few options and returns JSON-friendly data, or raises InputError with the reason.

ui/ registers these same methods as the named endpoints /analyse, /predict, /embed, /similarity,
/projection and /load_file; tests call them directly.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .analysis import (HEATMAP_MAX, SEARCH_K, Analysis, Hit, clean_text, map_view, search, sentences_from_file,
                       sentences_from_text)
from .inputs import InputError
from .predictor import Predictor
from .reference import ReferenceBuilder
from .settings import Settings
from .viz import ROW_ORDERS, cosine_similarity, row_order

log = logging.getLogger(__name__)
EXPLAIN_MAX = 20  # sentences per /explain request: each costs one batch of its leave-one-word-out variants
DOWNLOAD_MAX_AGE_S = 600  # Gradio copies returned files into its own cache at once; ours can go soon


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
        return None, f"The {view} could not be computed (an internal error, logged on the server); the other results are complete."


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


class Service:
    """The model, the reference map and the request limits behind every endpoint."""

    def __init__(self, predictor: Predictor, builder: ReferenceBuilder | None = None, settings: Settings | None = None):
        self.predictor = predictor
        self.builder = builder
        self.settings = settings or Settings()
        self.downloads = Downloads()

    def sentences(self, text: str | None) -> list[str]:
        return sentences_from_text(text, self.settings.max_sentences, self.settings.max_chars)

    def run(self, text: str | None) -> Analysis:
        """Read the text within the limits and run the model once."""
        return self.run_sentences(self.sentences(text))

    def run_sentences(self, sentences: list[str]) -> Analysis:
        return Analysis.run(self.predictor, sentences)

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
        """Why each sentence (one per line, at most EXPLAIN_MAX) gets `task`'s label ("intent" or
        "sentiment"), or the label asked for (a label id such as "card_arrival"; empty: the predicted
        one): [{"text", "task", "label", "probability", "method", "unit", "truncated", "words": [{"word",
        "start", "end", "score"}]}]; a score > 0 pushes towards the label."""
        sentences = self.sentences(text)
        if len(sentences) > EXPLAIN_MAX:
            raise InputError(f"/explain takes at most {EXPLAIN_MAX} sentences per request, got {len(sentences):,}")
        try:
            found = self.predictor.explain(sentences, task, label or None)
        except ValueError as err:  # an unknown task or label: the message lists the valid ones
            raise InputError(str(err)) from err
        return [e.to_api() for e in found]

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
