"""Pure plotly figure builders: arrays and strings in, go.Figure out. No torch, no Gradio.

Every figure has an explicit height (an auto-sized plotly figure can render at zero height inside
gr.Plot). All user text is HTML-escaped before it reaches plotly, which renders a subset of HTML in
labels and hovers: a sentence such as "<b>hi</b>" must show as typed, never as markup.
"""
from __future__ import annotations

import html
import textwrap
from collections import Counter
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
from scipy.spatial.distance import squareform

SIMILARITY_RANGE = (-1.0, 1.0)  # fixed, so colours mean the same thing across requests
SIMILARITY_COLOURS = "RdBu_r"  # diverging: 0 is white, +1 dark red, -1 dark blue
CELL_TEXT_MAX = 15  # print the value in each cell up to this many sentences
SCATTERGL_FROM = 500  # WebGL scatter from this many points (SVG gets slow beyond)
HOVER_WIDTH = 60  # characters per hover line
HOVER_LIMIT = 400  # characters of a sentence shown in a hover (the table has the rest)
TICK_WORDS = 4
TICK_CHARS = 28  # also caps a label whose first "word" is a long unbroken string
SENTIMENT_COLOURS = {"Negative": "#d62728", "Neutral": "#7f7f7f", "Positive": "#2ca02c"}  # readable labels
PALETTE = qualitative.Dark24 + qualitative.Light24  # 48 colours before any repeats
REFERENCE_COLOUR = "rgba(160, 160, 160, 0.35)"


def hover_text(text: str) -> str:
    """Escaped, shortened and wrapped for a plotly hover box."""
    if len(text) > HOVER_LIMIT:
        text = text[:HOVER_LIMIT - 1] + "…"
    return "<br>".join(html.escape(line, quote=False) for line in textwrap.wrap(text, HOVER_WIDTH) or [""])


def tick_label(i: int, text: str) -> str:
    """'3: first few words…' (1-based, as in the table), at most TICK_CHARS characters."""
    parts = text.split()
    short = f"{i + 1}: " + " ".join(parts[:TICK_WORDS])
    if len(parts) > TICK_WORDS or len(short) > TICK_CHARS:
        short = short[:TICK_CHARS - 1].rstrip() + "…"
    return html.escape(short, quote=False)


def cosine_similarity(embeddings: np.ndarray) -> np.ndarray:
    """(N, H) -> (N, N) cosine similarities, clipped to [-1, 1] against float noise."""
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)  # (N, 1)
    unit = embeddings / np.clip(norms, 1e-12, None)
    return np.clip(unit @ unit.T, -1.0, 1.0)


def cluster_order(similarity: np.ndarray) -> np.ndarray:
    """Row order from average-linkage clustering on cosine distance, so similar sentences sit together."""
    n = similarity.shape[0]
    if n < 3:
        return np.arange(n)
    distance = np.clip(1.0 - similarity, 0.0, 2.0)
    np.fill_diagonal(distance, 0.0)
    condensed = squareform(distance, checks=False)  # (N, N) -> (N * (N - 1) / 2,)
    tree = optimal_leaf_ordering(linkage(condensed, method="average"), condensed)
    return leaves_list(tree)


ROW_ORDERS = ("input", "cluster")


def row_order(similarity: np.ndarray, order: str) -> np.ndarray:
    """Row indices for `order`: "input" (table order) or "cluster" (average-linkage leaf order)."""
    if order not in ROW_ORDERS:
        raise ValueError(f"order must be 'input' or 'cluster', got {order!r}")
    return cluster_order(similarity) if order == "cluster" else np.arange(similarity.shape[0])


def similarity_heatmap(embeddings: np.ndarray, texts: Sequence[str], *, order: str = "input",
                       height: int = 600, title: str | None = None) -> go.Figure:
    """Cosine-similarity heatmap of N sentences on a fixed [-1, 1] colour scale.

    Takes embeddings, not a precomputed matrix: an (N, N) matrix and (N, H) embeddings are
    indistinguishable when N == H. `order`: "input" (table order) or "cluster" (groups as blocks).
    """
    if embeddings.shape[0] != len(texts) or not texts:
        raise ValueError(f"need one embedding per sentence (got {embeddings.shape[0]} and {len(texts)})")
    similarity = cosine_similarity(embeddings)
    idx = row_order(similarity, order)
    # Unique category names carry the full (escaped) sentence for the hover; ticks show short labels.
    names = [f"{i + 1}: {hover_text(texts[i])}" for i in idx]
    ticks = [tick_label(i, texts[i]) for i in idx]
    z = similarity[np.ix_(idx, idx)]
    heatmap = go.Heatmap(
        z=z, x=names, y=names, zmin=SIMILARITY_RANGE[0], zmax=SIMILARITY_RANGE[1],
        colorscale=SIMILARITY_COLOURS, colorbar={"title": {"text": "cosine<br>(fixed -1…1)"}},
        hovertemplate="%{y}<br>vs<br>%{x}<br><b>cosine %{z:.3f}</b><extra></extra>",
        texttemplate="%{z:.2f}" if len(idx) <= CELL_TEXT_MAX else None,
    )
    fig = go.Figure(heatmap)
    axis = {"tickmode": "array", "tickvals": names, "ticktext": ticks, "type": "category"}
    suffix = ", clustered" if order == "cluster" else ""
    fig.update_layout(
        title=title or f"Cosine similarity of {len(idx)} sentences{suffix} (colour range fixed at -1…1)",
        height=height, margin={"l": 10, "r": 10, "t": 50, "b": 10},
        xaxis={**axis, "tickangle": -45}, yaxis={**axis, "autorange": "reversed"},
    )
    return fig


def label_colours(labels: Sequence[str], colour_map: dict[str, str] | None = None) -> dict[str, str]:
    """A colour per label: from colour_map when given, else the palette, most frequent labels first."""
    ranked = [label for label, _ in Counter(labels).most_common()]
    return {label: (colour_map or {}).get(label, PALETTE[i % len(PALETTE)]) for i, label in enumerate(ranked)}


def scatter_trace(coords: np.ndarray, dims: int, n_points: int, **kwargs) -> go.Scatter | go.Scattergl | go.Scatter3d:
    """A marker trace in 2-D (WebGL from SCATTERGL_FROM points) or 3-D."""
    if dims == 3:
        return go.Scatter3d(x=coords[:, 0], y=coords[:, 1], z=coords[:, 2], mode="markers", **kwargs)
    trace = go.Scattergl if n_points >= SCATTERGL_FROM else go.Scatter
    return trace(x=coords[:, 0], y=coords[:, 1], mode="markers", **kwargs)


def projection_scatter(coords: np.ndarray, texts: Sequence[str], colour_labels: Sequence[str],
                       hover_extra: Sequence[str] | None = None, *, method: str, dims: int = 2,
                       height: int = 600, colour_map: dict[str, str] | None = None,
                       reference_coords: np.ndarray | None = None,
                       reference_hover: Sequence[str] | None = None) -> go.Figure:
    """Scatter of projected sentences, one trace (and legend entry) per colour label.

    hover_extra: a line per point (e.g. both predictions), already plain text; it is escaped here.
    reference_*: optional grey background points (a fitted reference map) drawn underneath.
    """
    if dims not in (2, 3) or coords.shape[1] < dims:
        raise ValueError(f"dims must be 2 or 3 and coords need that many columns (coords {coords.shape})")
    if not (coords.shape[0] == len(texts) == len(colour_labels)):
        raise ValueError(f"coords, texts and colour_labels differ in length "
                         f"({coords.shape[0]}, {len(texts)}, {len(colour_labels)})")
    extra = [html.escape(h, quote=False) for h in hover_extra] if hover_extra else [""] * len(texts)
    hovers = [f"<b>{i + 1}</b>: {hover_text(t)}<br>{e}" for i, (t, e) in enumerate(zip(texts, extra, strict=True))]
    total = len(texts) + (0 if reference_coords is None else len(reference_coords))
    fig = go.Figure()
    if reference_coords is not None:
        ref_hover = [hover_text(h) for h in (reference_hover or [""] * len(reference_coords))]
        fig.add_trace(scatter_trace(reference_coords, dims, total, name="reference sentences",
                                    marker={"size": 4, "color": REFERENCE_COLOUR}, text=ref_hover,
                                    hovertemplate="reference: %{text}<extra></extra>"))
    labels = np.asarray(colour_labels, dtype=object)
    for label, colour in label_colours(colour_labels, colour_map).items():
        idx = np.flatnonzero(labels == label)
        fig.add_trace(scatter_trace(coords[idx], dims, total, name=html.escape(label, quote=False),
                                    marker={"size": 9 if dims == 2 else 5, "color": colour,
                                            "line": {"width": 1, "color": "white"}},
                                    text=[hovers[i] for i in idx], hovertemplate="%{text}<extra></extra>"))
    title = "<br>".join(textwrap.wrap(html.escape(f"{len(texts)} sentences · {method}", quote=False), 70))
    fig.update_layout(title=title, height=height, margin={"l": 10, "r": 10, "t": 70, "b": 10},
                      legend={"itemsizing": "constant"})
    if dims == 2:
        # Projected axes carry no units; hide the numbers rather than suggest they mean something.
        fig.update_xaxes(showticklabels=False, title=None)
        fig.update_yaxes(showticklabels=False, title=None)
    return fig
