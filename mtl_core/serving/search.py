"""Search by meaning: the sentences most similar to a query, among a request's sentences and the reference set's."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtl_core.serving.analysis import Analysis
from mtl_core.serving.records import readable_label
from mtl_core.serving.reference import ReferenceMap

SEARCH_K = 10


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


def search(analysis: Analysis, reference: ReferenceMap | None, query: np.ndarray, k: int = SEARCH_K) -> list[Hit]:
    """The k sentences most similar to a query embedding (H,), among the request's and, when the reference
    map is ready, the reference set's."""
    hits = [Hit(float(c), "yours", i, analysis.texts[i], analysis.predictions[i].summary())
            for i, c in enumerate(analysis.embeddings @ query)]
    if reference is not None:
        ref = reference.refset
        hits += [Hit(float(c), "reference", j, ref.texts[j], f"{ref.sources[j]}: {readable_label(ref.labels[j])}")
                 for j, c in enumerate(reference.embeddings @ query)]
    return sorted(hits, key=lambda h: -h.cosine)[:k]
