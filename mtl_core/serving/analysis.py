"""What the app does with one request's sentences, free of any UI library: run the model once (plus a
session's own task on the same embeddings) and derive every view from that run: the table rows, the
per-sentence details, the downloads, the search. Reading input is inputs.py's job; figures, colours and wording are ui/'s.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mtl_core.serving.inputs import spreadsheet_safe
from mtl_core.serving.predictor import PROGRESS_THRESHOLD, Predictor, Results
from mtl_core.serving.projection import Projection, project
from mtl_core.serving.records import Prediction, predictions, readable_label, write_csv
from mtl_core.serving.reference import Neighbour, ReferenceBuilder, ReferenceSet
from mtl_core.tasks.fewshot import ExampleTask
from mtl_core.tasks.scope import ScopeDetector

HEATMAP_MAX = 300  # a 2,000 x 2,000 heatmap is ~30 MB of JSON; the API still returns the full matrix
PREVIEW_DIMS = 8
NEIGHBOURS = 5
SEARCH_K = 10


@dataclass(frozen=True)
class ScopeEvidence:
    """Why a sentence is in or out of one task's scope: its score against the threshold, and the nearest
    example the detector knows."""

    task: str
    rejected: bool
    score: float
    threshold: float
    nearest_text: str
    nearest_label: str
    nearest_cosine: float


@dataclass
class Analysis:
    """One model run over a request's sentences; every view below reuses it."""

    results: Results
    predictions: list[Prediction]
    detectors: dict[str, ScopeDetector] = field(default_factory=dict)  # task -> its out-of-scope detector
    task: ExampleTask | None = None  # the session's own task, when it has one

    @classmethod
    def run(cls, predictor: Predictor, sentences: list[str], task: ExampleTask | None = None) -> "Analysis":
        """One encoder pass for every head of the predictor; `task` (a session's) reads the same embeddings."""
        results = predictor.run(sentences, show_progress=len(sentences) >= PROGRESS_THRESHOLD)
        detectors = dict(predictor.scopes)
        if task is not None:
            results = task.apply(results)
            detectors[task.name] = task.scope
        return cls(results, predictions(results), detectors, task)

    @property
    def texts(self) -> list[str]:
        return self.results.texts

    @property
    def embeddings(self) -> np.ndarray:
        return self.results.embeddings

    @property
    def labels(self) -> dict[str, list[str]]:
        return self.results.labels

    @property
    def truncated(self) -> list[int]:
        """Indices of sentences cut at the encoder's token limit."""
        return [i for i, p in enumerate(self.predictions) if p.truncated]

    def table(self) -> list[list]:
        return [p.table_row(i + 1) for i, p in enumerate(self.predictions)]

    def most_similar(self, i: int) -> int | None:
        """The other sentence most similar to sentence i (None when there is no other)."""
        if len(self.texts) < 2:
            return None
        cosines = self.embeddings @ self.embeddings[i]  # (N,)
        cosines[i] = -np.inf
        return int(np.argmax(cosines))

    def scope_evidence(self, i: int) -> list[ScopeEvidence]:
        """Sentence i's scope decision for every task with a detector, with the nearest known example."""
        found = []
        for task, detector in self.detectors.items():
            decision = self.predictions[i][task]
            [(text, label, cosine)] = detector.nearest(self.embeddings[i])
            found.append(ScopeEvidence(task, decision.rejected, decision.scope_score, detector.config.threshold,
                                       text, label, cosine))
        return found

    def embedding_preview(self) -> list[list]:
        """Rows of PREVIEW_HEADERS: sentence, L2 norm, first PREVIEW_DIMS components, 4 decimals (float64,
        so no float32 noise such as -0.0038999998942017555 reaches the table)."""
        rounded = np.round(self.embeddings[:, :PREVIEW_DIMS].astype(np.float64), 4)
        norms = np.round(np.linalg.norm(self.embeddings.astype(np.float64), axis=1), 4)
        return [[i + 1, t, float(norms[i]), *rounded[i].tolist()] for i, t in enumerate(self.texts)]

    def write_downloads(self, folder: Path) -> list[Path]:
        """results.csv (the predict CLI's columns), embeddings.npy and embeddings.csv."""
        paths = [folder / "results.csv", folder / "embeddings.npy", folder / "embeddings.csv"]
        write_csv(self.predictions, self.labels, paths[0], self.results.scoped_heads)
        np.save(paths[1], self.embeddings)
        with open(paths[2], "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text"] + [f"e{j}" for j in range(self.embeddings.shape[1])])
            # float32 carries about 7 significant digits; more would only add noise and size
            rows = zip(self.texts, self.embeddings, strict=True)
            writer.writerows([spreadsheet_safe(t), *(f"{v:.7g}" for v in vector)] for t, vector in rows)
        return paths


@dataclass(frozen=True)
class MapView:
    """A projection of the request's sentences, optionally on top of the reference map."""

    projection: Projection
    note: str
    final: bool  # False: a stand-in while the reference map or UMAP is not ready; not worth caching
    reference_coords: np.ndarray | None = None
    reference: ReferenceSet | None = None



def map_view(embeddings: np.ndarray, dims: int, builder: ReferenceBuilder | None, use_reference: bool) -> MapView:
    """The reference map when asked for and ready, else a projection fitted on these sentences only."""
    ref = builder.map if builder else None
    if use_reference and ref is not None:
        projection = Projection(ref.transform(embeddings, dims), ref.method())
        note = f"{projection.method}: {ref.description(dims)}"
        return MapView(projection, note, True, ref.coords(dims), ref.refset)
    umap_ready = builder.umap_ready if builder else True
    projection = project(embeddings, dims, umap_ready=umap_ready)
    note = projection.method
    if use_reference:
        status = builder.status if builder else "no reference map configured"
        note += f". The reference map is not ready ({status}); this map is fitted on your sentences only."
    return MapView(projection, note, final=umap_ready and not (use_reference and builder is not None))


@dataclass(frozen=True)
class Hit:
    """One search result: a sentence of the request ("yours") or of the reference set."""

    cosine: float
    source: str  # "yours" or "reference"
    index: int  # row in the request (0-based) or in the reference set
    text: str
    labels: str  # the predictions (yours) or the reference label, readable

    def row(self) -> list:
        where = f"yours #{self.index + 1}" if self.source == "yours" else "reference"
        return [round(self.cosine, 3), where, self.labels, self.text]


def search(analysis: Analysis, reference: ReferenceSet | None, reference_embeddings: np.ndarray | None,
           query: np.ndarray, k: int = SEARCH_K) -> list[Hit]:
    """The k sentences most similar to a query embedding (H,), among the request's and the reference set's."""
    hits = [Hit(float(c), "yours", i, analysis.texts[i], analysis.predictions[i].summary())
            for i, c in enumerate(analysis.embeddings @ query)]
    if reference is not None:
        hits += [Hit(float(c), "reference", j, reference.texts[j],
                     f"{reference.sources[j]}: {readable_label(reference.labels[j])}")
                 for j, c in enumerate(reference_embeddings @ query)]
    return sorted(hits, key=lambda h: -h.cosine)[:k]


def hit_coords(hits: list[Hit], view: MapView) -> np.ndarray:
    """Where the hits lie on this map (a reference hit only when the map shows the reference set)."""
    points = [view.projection.coords[h.index] for h in hits if h.source == "yours"]
    if view.reference_coords is not None:
        points += [view.reference_coords[h.index] for h in hits if h.source == "reference"]
    return np.array(points, dtype=np.float32).reshape(len(points), view.projection.coords.shape[1])


@dataclass
class Session:
    """Per-browser-session state: the last analysis and the maps drawn from it so far."""

    analysis: Analysis
    maps: dict[tuple[int, bool], MapView] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)  # the last search's results, ringed on the map

    def map(self, dims: int, builder: ReferenceBuilder | None, use_reference: bool) -> MapView:
        key = (dims, use_reference)
        if key not in self.maps:
            view = map_view(self.analysis.embeddings, dims, builder, use_reference)
            if not view.final:
                return view
            self.maps[key] = view
        return self.maps[key]

    def neighbours(self, i: int, builder: ReferenceBuilder | None) -> dict[str, list[Neighbour]]:
        """The nearest labelled sentences of sentence i, per task: the reference set's examples of each
        checkpoint task, a session task's own examples."""
        embedding, found = self.analysis.embeddings[i], {}
        ref = builder.map if builder else None
        if ref is not None:
            found = {task: ref.nearest(embedding, NEIGHBOURS, source=task) for task in sorted(set(ref.refset.sources))}
        task = self.analysis.task
        if task is not None:
            found[task.name] = [Neighbour(text, task.name, label, cosine)
                                for text, label, cosine in task.scope.nearest(embedding, NEIGHBOURS)]
        return found
