"""Where a request's sentences lie on a map: a projection of their embeddings, on the reference map when it is
asked for and ready, else fitted on the sentences alone (projection.py does the maths)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mtl_core.serving.projection import Projection, project
from mtl_core.serving.reference import ReferenceBuilder, ReferenceSet

if TYPE_CHECKING:
    from mtl_core.serving.search import Hit


@dataclass(frozen=True)
class MapView:
    """A projection of the request's sentences, optionally on top of the reference map."""

    projection: Projection
    note: str
    final: bool  # False: a stand-in while the reference map or UMAP is not ready; not worth caching
    reference_coords: np.ndarray | None = None
    reference: ReferenceSet | None = None

    def hit_coords(self, hits: list[Hit]) -> np.ndarray:
        """Where search hits lie on this map, (n, dims): a reference hit only when the map shows the reference set."""
        coords = self.projection.coords
        points = [coords[h.index] for h in hits if h.source == "yours"]
        if self.reference_coords is not None:
            points += [self.reference_coords[h.index] for h in hits if h.source == "reference"]
        return np.array(points, dtype=np.float32).reshape(len(points), coords.shape[1])


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
