"""One model run over a request's sentences (plus a session's own task on the same embeddings), and what
is read from it: the table rows, the embedding preview and one sentence's details (its most similar other
sentence, its scope evidence, its nearest labelled sentences). Every view of a request starts from here; the
maps are maps.py's, the search search.py's, the files downloads.py's, and figures and wording are ui/'s.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mtl_core.serving.predictor import PROGRESS_THRESHOLD, Predictor, Results
from mtl_core.serving.records import Prediction, predictions
from mtl_core.serving.reference import Neighbour, ReferenceMap
from mtl_core.tasks.fewshot import ExampleTask
from mtl_core.tasks.scope import ScopeDetector

HEATMAP_MAX = 300  # a 2,000 x 2,000 heatmap is ~30 MB of JSON; the API still returns the full matrix
PREVIEW_DIMS = 8
NEIGHBOURS = 5


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
    """One model run over a request's sentences; every view of the request reuses it."""

    results: Results
    predictions: list[Prediction]
    detectors: dict[str, ScopeDetector] = field(default_factory=dict)  # task -> its out-of-scope detector
    task: ExampleTask | None = None  # the session's own task, when it has one

    @classmethod
    def run(cls, predictor: Predictor, sentences: list[str], task: ExampleTask | None = None) -> "Analysis":
        """One encoder pass for every head of the predictor and `task` (a session's)."""
        results = predictor.run(sentences, show_progress=len(sentences) >= PROGRESS_THRESHOLD, extra=task)
        detectors = dict(predictor.scopes)
        if task is not None:
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
            [(text, label, cosine)] = detector.nearest(self.results.vectors(task)[i])
            found.append(ScopeEvidence(task, decision.rejected, decision.scope_score, detector.config.threshold,
                                       text, label, cosine))
        return found

    def embedding_preview(self) -> list[list]:
        """Rows of PREVIEW_HEADERS: sentence, L2 norm, first PREVIEW_DIMS components, 4 decimals (float64,
        so no float32 noise such as -0.0038999998942017555 reaches the table)."""
        rounded = np.round(self.embeddings[:, :PREVIEW_DIMS].astype(np.float64), 4)
        norms = np.round(np.linalg.norm(self.embeddings.astype(np.float64), axis=1), 4)
        return [[i + 1, t, float(norms[i]), *rounded[i].tolist()] for i, t in enumerate(self.texts)]

    def neighbours(self, i: int, reference: ReferenceMap | None) -> dict[str, list[Neighbour]]:
        """The nearest labelled sentences of sentence i, per task: the reference set's examples of each
        checkpoint task (when the reference map is ready), a session task's own examples."""
        embedding, found = self.embeddings[i], {}
        if reference is not None:
            found = {task: reference.nearest(embedding, NEIGHBOURS, source=task)
                     for task in sorted(set(reference.refset.sources))}
        if self.task is not None:
            found[self.task.name] = [Neighbour(text, self.task.name, label, cosine)
                                     for text, label, cosine in
                                     self.task.scope.nearest(self.results.vectors(self.task.name)[i], NEIGHBOURS)]
        return found
