"""Similarity maths for the heatmap, search and neighbours: cosine similarities and the clustered row order.
Arrays in, arrays out; the figures that draw them are the UI's (ui/figures.py)."""
from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import fcluster, leaves_list, linkage, optimal_leaf_ordering
from scipy.spatial.distance import squareform

from mtl_core.tasks.scope import unit_rows

BLOCK_DISTANCE = 0.6  # clustered heatmap: outline groups whose average cosine distance stays under this


def cosine_similarity(embeddings: np.ndarray, others: np.ndarray | None = None) -> np.ndarray:
    """(N, H) -> (N, N) cosine similarities of all pairs, or (N, M) against `others` (M, H), clipped to
    [-1, 1] against float noise."""
    unit = unit_rows(embeddings)
    return np.clip(unit @ (unit if others is None else unit_rows(others)).T, -1.0, 1.0)


def cluster_tree(similarity: np.ndarray) -> np.ndarray:
    """Average-linkage tree on cosine distance, leaves optimally ordered (scipy linkage matrix)."""
    distance = np.clip(1.0 - similarity, 0.0, 2.0)
    np.fill_diagonal(distance, 0.0)
    condensed = squareform(distance, checks=False)  # (N, N) -> (N * (N - 1) / 2,)
    return optimal_leaf_ordering(linkage(condensed, method="average"), condensed)


def cluster_order(similarity: np.ndarray) -> np.ndarray:
    """Row order from average-linkage clustering on cosine distance, so similar sentences sit together."""
    return clustered(similarity)[0]


def cluster_blocks(tree: np.ndarray, order: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) positions in `order` (the tree's leaf order) of each group of 2+ sentences whose
    average-linkage cosine distance stays under BLOCK_DISTANCE: contiguous in the leaf order, so they
    show as diagonal blocks."""
    groups = fcluster(tree, t=BLOCK_DISTANCE, criterion="distance")[order]
    bounds = np.flatnonzero(np.diff(groups)) + 1  # where the group changes along the diagonal
    starts, ends = np.r_[0, bounds], np.r_[bounds, len(order)] - 1
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True) if b > a]


def clustered(similarity: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The clustered row order and its diagonal blocks, from one clustering."""
    if similarity.shape[0] < 3:
        return np.arange(similarity.shape[0]), []
    tree = cluster_tree(similarity)
    order = leaves_list(tree)
    return order, cluster_blocks(tree, order)


ROW_ORDERS = ("input", "cluster")


def row_order(similarity: np.ndarray, order: str) -> np.ndarray:
    """Row indices for `order`: "input" (table order) or "cluster" (average-linkage leaf order)."""
    if order not in ROW_ORDERS:
        raise ValueError(f"order must be 'input' or 'cluster', got {order!r}")
    return cluster_order(similarity) if order == "cluster" else np.arange(similarity.shape[0])
