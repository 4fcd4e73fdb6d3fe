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
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from mtl_core.serving.records import readable_label
from mtl_core.serving.service import HEATMAP_MAX, Analysis, Hit, MapView
from mtl_core.serving.similarity import clustered, cosine_similarity, row_order
from mtl_core.tasks.definitions import BUILTIN_TASKS, TaskDefinition

SIMILARITY_RANGE = (-1.0, 1.0)  # fixed, so colours mean the same thing across requests
SIMILARITY_COLOURS = "RdBu_r"  # diverging: 0 is white, +1 dark red, -1 dark blue
CELL_TEXT_MAX = 15  # print the value in each cell up to this many sentences
HOVER_WIDTH = 60  # characters per hover line
HOVER_LIMIT = 400  # characters of a sentence shown in a hover (the table has the rest)
REFERENCE_HOVER_LIMIT = 90  # reference points: ~1,000 of them travel with every map, so shorter hovers
TICK_LABELS_MAX = 40  # sentence tick labels up to this many rows; row numbers beyond
NUMBER_TICKS = 20  # at most this many row-number ticks
TICK_WORDS = 4
TICK_CHARS = 28  # also caps a label whose first "word" is a long unbroken string
PALETTE = qualitative.Dark24 + qualitative.Light24  # 48 colours before any repeats
REFERENCE_COLOUR = "rgba(160, 160, 160, 0.35)"  # reference points without a colour label
REFERENCE_ALPHA = 0.28  # labelled reference points: their label's colour, faded
FEW_POINTS = 30  # up to this many of the user's points on a map, each drawn large
REGION_MIN_POINTS = 5  # draw a region's label on the map from this many reference points
# A region label's size as a share of the map's x / y span (11 px bold text on a ~530 x 400 px plot)
LABEL_CHAR_SHARE = 0.0135  # per character, of the x span
LABEL_HEIGHT_SHARE = 0.06  # of the y span
# A built-in task's label groups (the 10 intent topic groups, mtl_core/tasks/intent_groups.py): D3's ten colours with
# its grey swapped for a dark blue, since grey means "out of scope" on the map (a grey group read as out of scope)
GROUP_PALETTE = [c if c != "#7F7F7F" else "#393B79" for c in qualitative.D3]


OUT_OF_SCOPE = "Out of scope"  # the map's legend entry for sentences that match none of a task's labels
OUT_OF_SCOPE_COLOUR = "#8c8c8c"  # neutral grey, darker than the faded reference points


# ---- colour policy: which colour a task's label gets on the map -------------------------------------------

@lru_cache(maxsize=32)
def colour_scheme(labels: tuple[str, ...]) -> TaskDefinition | None:
    """The built-in task whose colours fit these labels: every label in its label groups, or among its coloured
    labels (compared as readable labels, so a task of one's own with the same labels gets the same colours)."""
    readable = {readable_label(label) for label in labels}
    for task in BUILTIN_TASKS:
        if task.label_groups and set(labels) <= set(task.label_groups):
            return task
        if task.colours and readable <= {readable_label(label) for label in task.colours}:
            return task
    return None


def colour_group(labels: Sequence[str], label: str) -> str:
    """The name `label` is coloured by: its group when the task's labels are a built-in task's grouped labels
    (77 intent colours would read as noise), the readable label otherwise."""
    scheme = colour_scheme(tuple(labels))
    if scheme is not None and scheme.label_groups:
        return scheme.label_groups.get(label, label)
    return readable_label(label)


def colour_map(labels: Sequence[str]) -> dict[str, str]:
    """Fixed colours for a task with these labels: a built-in task's groups in their order or its labels'
    colours by meaning, any other task's labels in the palette's order; out of scope grey."""
    scheme = colour_scheme(tuple(labels))
    if scheme is not None and scheme.label_groups:
        fixed = {group: GROUP_PALETTE[i % len(GROUP_PALETTE)] for i, group in enumerate(scheme.groups)}
    elif scheme is not None:
        fixed = {readable_label(label): colour for label, colour in scheme.colours.items()}
    else:
        fixed = {readable_label(label): PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}
    return {**fixed, OUT_OF_SCOPE: OUT_OF_SCOPE_COLOUR}


@lru_cache(maxsize=8192)
def hover_text(text: str, limit: int = HOVER_LIMIT) -> str:
    """Escaped, shortened and wrapped for a plotly hover box. Cached: the reference map's ~1,000 points
    carry the same hovers on every map (wrapping them took ~40 ms of each 10-sentence request)."""
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    return "<br>".join(html.escape(line, quote=False) for line in textwrap.wrap(text, HOVER_WIDTH) or [""])


def tick_label(i: int, text: str) -> str:
    """'3: first few words…' (1-based, as in the table), at most TICK_CHARS characters."""
    parts = text.split()
    short = f"{i + 1}: " + " ".join(parts[:TICK_WORDS])
    if len(parts) > TICK_WORDS or len(short) > TICK_CHARS:
        short = short[:TICK_CHARS - 1].rstrip() + "…"
    return html.escape(short, quote=False)


def heatmap_axis(names: list[str], idx: np.ndarray, texts: Sequence[str]) -> dict:
    """Short sentence labels up to TICK_LABELS_MAX rows; beyond, at most NUMBER_TICKS row numbers
    (the table's numbering): 300 labels on an axis pile into a solid block."""
    if len(idx) <= TICK_LABELS_MAX:
        return {"tickvals": names, "ticktext": [tick_label(i, texts[i]) for i in idx]}
    step = -(-len(idx) // NUMBER_TICKS)
    return {"tickvals": names[::step], "ticktext": [str(i + 1) for i in idx[::step]]}


def block_outlines(blocks: list[tuple[int, int]]) -> list[dict]:
    """A rectangle around each diagonal block (positions on the category axes are row indices)."""
    return [{"type": "rect", "x0": a - 0.5, "x1": b + 0.5, "y0": a - 0.5, "y1": b + 0.5, "xref": "x", "yref": "y",
             "line": {"color": "#222", "width": 1.5}, "fillcolor": "rgba(0,0,0,0)"} for a, b in blocks]


def similarity_heatmap(embeddings: np.ndarray, texts: Sequence[str], *, order: str = "input",
                       height: int = 600, title: str | None = None) -> go.Figure:
    """Cosine-similarity heatmap of N sentences on a fixed [-1, 1] colour scale.

    Takes embeddings, not a precomputed matrix: an (N, N) matrix and (N, H) embeddings are
    indistinguishable when N == H. `order`: "input" (table order) or "cluster" (groups outlined as
    blocks on the diagonal). Every cell's hover names both sentences in full, whatever the ticks show.
    """
    if embeddings.shape[0] != len(texts) or not texts:
        raise ValueError(f"need one embedding per sentence (got {embeddings.shape[0]} and {len(texts)})")
    similarity = cosine_similarity(embeddings)
    idx, blocks = clustered(similarity) if order == "cluster" else (row_order(similarity, order), [])
    names = [f"{i + 1}: {hover_text(texts[i])}" for i in idx]  # unique category names: the hover text
    heatmap = go.Heatmap(
        z=similarity[np.ix_(idx, idx)], x=names, y=names, zmin=SIMILARITY_RANGE[0], zmax=SIMILARITY_RANGE[1],
        colorscale=SIMILARITY_COLOURS, colorbar={"title": {"text": "cosine<br>(fixed -1…1)"}},
        hovertemplate="%{y}<br>vs<br>%{x}<br><b>cosine %{z:.3f}</b><extra></extra>",
        texttemplate="%{z:.2f}" if len(idx) <= CELL_TEXT_MAX else None,
    )
    fig = go.Figure(heatmap)
    axis = {"tickmode": "array", "type": "category", **heatmap_axis(names, idx, texts)}
    suffix = f", clustered into {len(blocks)} outlined groups" if order == "cluster" else ""
    fig.update_layout(
        title=title or f"Cosine similarity of {len(idx)} sentences{suffix} (colour range fixed at -1…1)",
        height=height, margin={"l": 10, "r": 10, "t": 50, "b": 10}, shapes=block_outlines(blocks),
        xaxis={**axis, "tickangle": -45}, yaxis={**axis, "autorange": "reversed"},
    )
    return fig


def label_colours(labels: Sequence[str], colour_map: dict[str, str] | None = None) -> dict[str, str]:
    """A colour per label: from colour_map when given, else the palette, most frequent labels first."""
    ranked = [label for label, _ in Counter(labels).most_common()]
    return {label: (colour_map or {}).get(label, PALETTE[i % len(PALETTE)]) for i, label in enumerate(ranked)}


def marker_size(points: int, dims: int) -> int:
    """The user's points: large while few stand out against the faded reference points (4 px), smaller when
    hundreds would cover the map and its region labels (looked at in the 10- and 300-sentence screenshots)."""
    if dims == 3:
        return 6 if points <= FEW_POINTS else 4
    return 13 if points <= FEW_POINTS else 9


def scatter_trace(coords: np.ndarray, dims: int, **kwargs) -> go.Scatter | go.Scatter3d:
    """A marker trace in 2-D or 3-D. 2-D stays SVG even at the app's largest map (2,000 sentences on
    ~1,000 reference points): measured in headless chromium (benchmarks/browser.py), WebGL's set-up cost
    more than SVG's drawing at every size, ~200 ms of a 10-sentence request."""
    if dims == 3:
        return go.Scatter3d(x=coords[:, 0], y=coords[:, 1], z=coords[:, 2], mode="markers", **kwargs)
    return go.Scatter(x=coords[:, 0], y=coords[:, 1], mode="markers", **kwargs)


def faded(colour: str) -> str:
    """A '#rrggbb' colour at REFERENCE_ALPHA, for background points that must not compete with the user's."""
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {REFERENCE_ALPHA})"


@dataclass(frozen=True)
class Background:
    """Labelled reference points drawn underneath the user's (a fitted reference map)."""

    coords: np.ndarray  # (R, dims)
    hover: Sequence[str]
    labels: Sequence[str | None]  # colour label per point, None: no colour (the other task's examples)


def background_traces(ref: Background, colours: dict[str, str], dims: int) -> list:
    """One faded trace per coloured label (no legend entry: the user's points carry it) and one grey
    trace for the rest."""
    labels = np.asarray([label or "" for label in ref.labels], dtype=object)
    hover = np.asarray([hover_text(h, REFERENCE_HOVER_LIMIT) for h in ref.hover], dtype=object)
    traces = []
    for label in sorted(set(labels)):
        idx = np.flatnonzero(labels == label)
        colour = faded(colours[label]) if label in colours else REFERENCE_COLOUR
        traces.append(scatter_trace(ref.coords[idx], dims, name=f"reference: {label or 'other'}",
                                    showlegend=False, legendgroup=label or "reference", text=hover[idx].tolist(),
                                    marker={"size": 4 if dims == 2 else 2.5, "color": colour},
                                    hovertemplate="reference: %{text}<extra></extra>"))
    return traces


def label_box(label: str, centre: np.ndarray, span: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1) a region label takes on the map, estimated from its length and the map's span."""
    half_width = len(label) * LABEL_CHAR_SHARE * span[0] / 2
    half_height = LABEL_HEIGHT_SHARE * span[1] / 2
    return centre[0] - half_width, centre[0] + half_width, centre[1] - half_height, centre[1] + half_height


def boxes_overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def region_annotations(ref: Background, dims: int) -> list[dict]:
    """The label of each coloured region of the reference map, at the median of its points; largest
    regions first, and a label whose box (estimated from its length, in the first two axes) would
    overlap one already placed is left out rather than drawn over it."""
    labels = np.asarray([label or "" for label in ref.labels], dtype=object)
    span = np.ptp(ref.coords[:, :2], axis=0)
    span[span == 0] = 1.0
    placed: list[tuple[float, ...]] = []
    notes = []
    for label, size in Counter(label for label in labels if label).most_common():
        if size < REGION_MIN_POINTS:
            continue
        centre = np.median(ref.coords[labels == label], axis=0)
        box = label_box(label, centre, span)
        if any(boxes_overlap(box, other) for other in placed):
            continue
        placed.append(box)
        note = {"text": f"<b>{html.escape(label, quote=False)}</b>", "showarrow": False, "opacity": 0.85,
                "font": {"size": 11, "color": "#333"}, "bgcolor": "rgba(255,255,255,0.6)"}
        keys = ("x", "y", "z")[:dims]
        notes.append({**note, **{k: float(v) for k, v in zip(keys, centre, strict=True)}})
    return notes


def highlight_trace(coords: np.ndarray, dims: int) -> go.Scatter | go.Scatter3d:
    """Rings around the points a search found."""
    return scatter_trace(coords, dims, name="search results", hoverinfo="skip",
                         marker={"size": 18 if dims == 2 else 9, "symbol": "circle-open", "color": "#000",
                                 "line": {"width": 2.5, "color": "#000"}})


def projection_scatter(coords: np.ndarray, texts: Sequence[str], colour_labels: Sequence[str],
                       hover_extra: Sequence[str] | None = None, *, method: str, dims: int = 2,
                       height: int = 600, colour_map: dict[str, str] | None = None,
                       background: Background | None = None, highlight: np.ndarray | None = None) -> go.Figure:
    """Scatter of projected sentences, one trace (and legend entry) per colour label.

    hover_extra: a line per point (e.g. both predictions), already plain text; it is escaped here.
    background: labelled reference points, faded in their label's colour, with the regions' labels drawn
    at their centres. highlight: (M, dims) coordinates to ring (search results). The legend sits under
    the plot, so however many entries it has, it never narrows the map.
    """
    if dims not in (2, 3) or coords.shape[1] < dims:
        raise ValueError(f"dims must be 2 or 3 and coords need that many columns (coords {coords.shape})")
    if not (coords.shape[0] == len(texts) == len(colour_labels)):
        raise ValueError(f"coords, texts and colour_labels differ in length "
                         f"({coords.shape[0]}, {len(texts)}, {len(colour_labels)})")
    extra = [html.escape(h, quote=False) for h in hover_extra] if hover_extra else [""] * len(texts)
    hovers = [f"<b>{i + 1}</b>: {hover_text(t)}<br>{e}" for i, (t, e) in enumerate(zip(texts, extra, strict=True))]
    all_labels = list(colour_labels) + ([label for label in background.labels if label] if background else [])
    colours = label_colours(all_labels, colour_map)
    fig = go.Figure(background_traces(background, colours, dims) if background else [])
    labels = np.asarray(colour_labels, dtype=object)
    for label in label_colours(colour_labels, colour_map):
        idx = np.flatnonzero(labels == label)
        fig.add_trace(scatter_trace(coords[idx], dims, name=html.escape(label, quote=False), legendgroup=label,
                                    marker={"size": marker_size(len(texts), dims), "color": colours[label],
                                            "line": {"width": 1.5 if len(texts) <= FEW_POINTS else 1, "color": "#222"}},
                                    text=[hovers[i] for i in idx], hovertemplate="%{text}<extra></extra>"))
    for label in sorted(set(colours) - set(colour_labels)):  # the reference's other colours, in the legend too
        fig.add_trace(scatter_trace(np.full((1, dims), np.nan), dims, name=html.escape(label, quote=False),
                                    legendgroup=label, hoverinfo="skip", text=[],  # no sentence of the user's
                                    marker={"size": 8, "color": faded(colours[label])}))
    if highlight is not None and len(highlight):
        fig.add_trace(highlight_trace(highlight, dims))
    title = "<br>".join(textwrap.wrap(html.escape(f"{len(texts)} sentences · {method}", quote=False), 70))
    fig.update_layout(title=title, height=height, margin={"l": 10, "r": 10, "t": 70, "b": 10},
                      legend={"itemsizing": "constant", "orientation": "h", "yanchor": "top", "y": -0.02, "x": 0})
    notes = region_annotations(background, dims) if background else []
    if dims == 2:
        # Projected axes carry no units; hide the numbers rather than suggest they mean something.
        fig.update_xaxes(showticklabels=False, title=None)
        fig.update_yaxes(showticklabels=False, title=None)
        fig.update_layout(annotations=notes)
    else:
        axis = {"showticklabels": False, "title": {"text": ""}, "backgroundcolor": "#f4f4f4",
                "gridcolor": "#d0d0d0", "showbackground": True}
        fig.update_layout(scene={"xaxis": axis, "yaxis": axis, "zaxis": axis, "annotations": notes})
    return fig


def placeholder_figure(message: str, height: int = 600) -> go.Figure:
    """An empty figure with a message, shown before the first analysis: the page then loads plotly while
    the user types, not after the first click (measured: benchmarks/browser.py)."""
    fig = go.Figure(go.Scatter(x=[], y=[], mode="markers"))
    fig.update_layout(height=height, xaxis={"visible": False}, yaxis={"visible": False},
                      annotations=[{"text": html.escape(message, quote=False), "showarrow": False,
                                    "font": {"size": 14, "color": "#666"}}])
    return fig


TOWARDS, AWAY = (27, 158, 119), (217, 95, 2)  # green: pushes towards the label; orange: away from it


def word_highlights(text: str, spans: Sequence[tuple[int, int]], scores: Sequence[float]) -> str:
    """HTML of `text` with each word's background coloured by its score (diverging: green > 0, orange < 0,
    opacity by |score| relative to the sentence's largest); the text between words is kept as typed.
    Everything is escaped: a sentence with HTML in it stays text."""
    largest = max((abs(x) for x in scores), default=0.0) or 1.0
    parts, end = [], 0
    for (start, stop), score in zip(spans, scores, strict=True):
        parts.append(html.escape(text[end:start]))
        r, g, b = TOWARDS if score >= 0 else AWAY
        alpha = 0.08 + 0.72 * abs(score) / largest
        parts.append(f'<span style="background: rgba({r},{g},{b},{alpha:.2f}); border-radius: 3px; padding: 0 2px" '
                     f'title="{score:+.3f}">{html.escape(text[start:stop])}</span>')
        end = stop
    parts.append(html.escape(text[end:]))
    return "".join(parts)


# Figures of one analysis: what the app's views draw

def colour_labels(analysis: Analysis, colour_by: str) -> list[str]:
    """Each sentence's colour label (colour_group above); out-of-scope sentences share one neutral label."""
    if colour_by not in analysis.labels:
        raise ValueError(f"colour_by must be one of {list(analysis.labels)}, got {colour_by!r}")
    names = analysis.labels[colour_by]
    return [OUT_OF_SCOPE if p[colour_by].rejected else colour_group(names, p[colour_by].label)
            for p in analysis.predictions]


def background(view: MapView, colour_by: str) -> Background | None:
    """The reference points, coloured when they are examples of the task the map is coloured by."""
    ref = view.reference
    if ref is None:
        return None
    names = sorted({label for source, label in zip(ref.sources, ref.labels) if source == colour_by})
    labels = [colour_group(names, label) if source == colour_by else None
              for source, label in zip(ref.sources, ref.labels, strict=True)]
    hover = [f"[{source}: {readable_label(label)}] {text}"
             for text, source, label in zip(ref.texts, ref.sources, ref.labels, strict=True)]
    return Background(view.reference_coords, hover, labels)


def heatmap_figure(analysis: Analysis, order: str, height: int = 650) -> go.Figure:
    n = min(len(analysis.texts), HEATMAP_MAX)
    title = None
    if n < len(analysis.texts):
        title = f"Cosine similarity of the first {n} of {len(analysis.texts):,} sentences (colour range fixed at -1…1)"
    return similarity_heatmap(analysis.embeddings[:n], analysis.texts[:n], order=order, height=height, title=title)


def map_figure(analysis: Analysis, view: MapView, colour_by: str, dims: int, height: int = 650,
               hits: list[Hit] | None = None) -> go.Figure:
    """The map coloured by `colour_by`, search hits ringed."""
    hover = [p.summary() for p in analysis.predictions]
    return projection_scatter(view.projection.coords, analysis.texts, colour_labels(analysis, colour_by), hover,
                              method=view.projection.method, dims=dims, height=height,
                              colour_map=colour_map(analysis.labels[colour_by]),
                              background=background(view, colour_by), highlight=view.hit_coords(hits or []))
