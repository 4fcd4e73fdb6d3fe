"""Low-dimensional maps of sentence embeddings: PCA for a handful of points, UMAP otherwise.

UMAP is honest only with enough neighbours: with n_neighbors >= N it fails, and with 2-3 points its
spectral initialisation breaks. Below UMAP_MIN_POINTS distinct sentences we use an exact PCA instead
and say so in the method string that every figure shows.

Reproducibility over speed: every UMAP here gets `random_state=UMAP_RANDOM_STATE`, so the same
sentences always draw the same map (and tests can rely on it). umap-learn then runs single-threaded;
at the app's sizes (at most 2,000 sentences, about 1,000 reference points) a fit takes seconds, which
we accept. `umap` is imported lazily because importing it (numba) alone takes seconds.
"""
from __future__ import annotations

import logging
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mtl_core.serving.similarity import cosine_similarity

if TYPE_CHECKING:
    import umap

log = logging.getLogger(__name__)

UMAP_MIN_POINTS = 8  # below this many distinct sentences: PCA
UMAP_MAX_NEIGHBOURS = 15  # umap-learn's default; capped at N - 1 for small N
UMAP_RANDOM_STATE = 42


@dataclass(frozen=True)
class Projection:
    coords: np.ndarray  # (N, d)
    method: str  # plain words, shown under the figure


def distinct_rows(x: np.ndarray, decimals: int = 5) -> int:
    """How many different rows x has, ignoring float noise (identical sentences embed identically)."""
    return int(np.unique(np.round(x, decimals), axis=0).shape[0])


def pca(x: np.ndarray, n_components: int) -> np.ndarray:
    """Exact PCA by SVD; (N, H) -> (N, n_components), zero-padded where the data has lower rank.

    Signs are fixed (largest loading positive) so the same input always gives the same picture.
    """
    centred = x - x.mean(axis=0, keepdims=True)  # (N, H)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)  # u (N, r), s (r,), vt (r, H)
    k = min(n_components, int((s > s.max() * 1e-5).sum()))  # directions beyond the rank are float noise
    signs = np.sign(vt[np.arange(k), np.abs(vt[:k]).argmax(axis=1)])
    signs[signs == 0] = 1.0
    coords = np.zeros((x.shape[0], n_components), dtype=np.float32)
    coords[:, :k] = u[:, :k] * s[:k] * signs  # (N, k)
    return coords


def cosine_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - cosine similarity of every row of a with every row of b: (N, H), (M, H) -> (N, M), float64."""
    return 1.0 - cosine_similarity(a.astype(np.float64), b.astype(np.float64))


@contextmanager
def precomputed_notices_silenced():
    """umap-learn warns on every fit and transform with precomputed distances about what that means
    (no inverse_transform; the input is read as distances): expected here, so not shown."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*precomputed metric", category=UserWarning)
        yield


class CosineUMAP:
    """umap-learn's UMAP on cosine distances that we compute with one matrix product.

    Why not metric="cosine": below 4,096 points umap-learn computes exact distances with one Python call
    per pair, so placing 1,000 sentences on the ~1,000-point reference map made a million calls (1.6 s
    of a 1,000-sentence request here). Given the same distances as a matrix ("precomputed", ~5 ms), UMAP
    builds the same exact neighbour graph. The layout starts from our PCA (init="pca" would take the
    PCA of the distance matrix), with a little seeded noise so no two starting points coincide.
    """

    def __init__(self, n_points: int, n_components: int):
        self.n_neighbors = min(UMAP_MAX_NEIGHBOURS, n_points - 1)
        self.n_components = n_components
        self._fitted: np.ndarray | None = None  # (R, H) the fitted points, to measure new ones against
        self._umap: "umap.UMAP | None" = None

    def fit(self, x: np.ndarray) -> "CosineUMAP":
        import umap

        noise = np.random.default_rng(UMAP_RANDOM_STATE).normal(scale=1e-4, size=(len(x), self.n_components))
        self._umap = umap.UMAP(n_components=self.n_components, n_neighbors=self.n_neighbors, metric="precomputed",
                               init=pca(x, self.n_components) + noise, random_state=UMAP_RANDOM_STATE, n_jobs=1)
        with precomputed_notices_silenced():
            self._umap.fit(cosine_distances(x, x))
        self._fitted = x
        return self

    @property
    def embedding_(self) -> np.ndarray:
        """The fitted points' coordinates, (R, n_components)."""
        return self._umap.embedding_

    def fit_transform(self, x: np.ndarray) -> np.ndarray:
        return self.fit(x).embedding_

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Place new points on the fitted map: (N, H) -> (N, n_components)."""
        with precomputed_notices_silenced():
            return self._umap.transform(cosine_distances(x, self._fitted))


def umap_method(n_neighbors: int) -> str:
    return f"UMAP (cosine, n_neighbors={n_neighbors}, random_state={UMAP_RANDOM_STATE})"


def project(embeddings: np.ndarray, n_components: int = 2, *, umap_ready: bool = True) -> Projection:
    """Map (N, H) embeddings to (N, n_components) and name the method used.

    `umap_ready=False` (numba not compiled yet) draws PCA instead, so no caller waits on compilation.
    """
    if embeddings.ndim != 2 or embeddings.shape[0] == 0:
        raise ValueError(f"expected embeddings of shape (N >= 1, H), got {embeddings.shape}")
    if n_components not in (2, 3):
        raise ValueError(f"n_components must be 2 or 3, got {n_components}")
    n, distinct = embeddings.shape[0], distinct_rows(embeddings)
    if distinct == 1:
        what = "one sentence" if n == 1 else "all sentences identical"
        return Projection(np.zeros((n, n_components), dtype=np.float32), f"no projection ({what})")
    if distinct < UMAP_MIN_POINTS:
        return Projection(pca(embeddings, n_components),
                          f"PCA ({distinct} distinct sentences; UMAP needs at least {UMAP_MIN_POINTS})")
    if not umap_ready:
        return Projection(pca(embeddings, n_components), "PCA (UMAP is still warming up; try again shortly)")
    model = CosineUMAP(n, n_components)
    coords = model.fit_transform(embeddings).astype(np.float32)
    return Projection(coords, umap_method(model.n_neighbors))


def warm_up() -> float:
    """Compile umap-learn's numba code with a tiny fit + transform; returns the seconds it took."""
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    points = rng.normal(size=(32, 8)).astype(np.float32)
    CosineUMAP(len(points), 2).fit(points).transform(points[:4])
    seconds = time.perf_counter() - start
    log.info("UMAP warm-up (numba compilation) took %.1f s", seconds)
    return seconds
