"""What the app does with one request, free of any UI library: read and limit the input, run the
model once, and derive every view (table, per-sentence details, figures, downloads) from that run.

The endpoints (service.py) and the Gradio layer (the ui/ package) only call these functions.
"""
from __future__ import annotations

import csv
import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from .inputs import InputError, parse_sentences, split_lines
from .predictor import PROGRESS_THRESHOLD, Predictor, Results
from .projection import Projection, project
from .records import Prediction, predictions, readable_label, write_csv
from .intent_groups import INTENT_GROUPS, intent_group
from .reference import Neighbour, ReferenceBuilder, ReferenceSet
from .scope import ScopeDetector
from .settings import MAX_CHARS, MAX_SENTENCES
from .viz import GROUP_PALETTE, SENTIMENT_COLOURS, Background, projection_scatter, similarity_heatmap

OUT_OF_SCOPE = "Out of scope"  # the map's legend entry for sentences that match none of the intents
OUT_OF_SCOPE_COLOUR = "#8c8c8c"  # neutral grey, darker than the faded reference points
HEATMAP_MAX = 300  # a 2,000 x 2,000 heatmap is ~30 MB of JSON; the API still returns the full matrix
PREVIEW_DIMS = 8
NEIGHBOURS = 5
NEIGHBOUR_HEADERS = ["cosine", "label", "reference sentence"]
SEARCH_K = 10
SEARCH_HEADERS = ["cosine", "where", "labels", "sentence"]
PREVIEW_HEADERS = ["#", "sentence", "norm"] + [f"e{j}" for j in range(PREVIEW_DIMS)]


def clean_text(text: str) -> str:
    """Replace what cannot be UTF-8 encoded (lone surrogates from a client) instead of failing later."""
    return text.encode("utf-8", errors="replace").decode("utf-8")


def check_count(sentences: list[str], source: str = "the input", max_sentences: int = MAX_SENTENCES) -> list[str]:
    if not sentences:
        raise InputError(f"{source} has no sentences: type or paste at least one, one per line")
    if len(sentences) > max_sentences:
        raise InputError(f"{source} has {len(sentences):,} sentences; at most {max_sentences:,} per request. "
                         "Split it into smaller parts.")
    return sentences


def sentences_from_text(text: str | None, max_sentences: int = MAX_SENTENCES, max_chars: int = MAX_CHARS) -> list[str]:
    """One sentence per non-blank line, within the per-request limits."""
    text = text or ""
    if len(text) > max_chars:
        raise InputError(f"the input has {len(text):,} characters; at most {max_chars:,} per request. "
                         "Split it into smaller parts.")
    return check_count(split_lines(clean_text(text)), max_sentences=max_sentences)


def sentences_from_file(path: str | Path, allowed_folder: str | Path | None = None,
                        max_sentences: int = MAX_SENTENCES) -> list[str]:
    """Sentences of an uploaded .txt/.csv, each on one line (so they can go into the textbox).

    With `allowed_folder`, a path outside it is refused: a client cannot make the server read its files.
    """
    path = Path(path)
    if allowed_folder is not None and not path.resolve().is_relative_to(Path(allowed_folder).resolve()):
        raise InputError(f"{path.name}: only files uploaded to this app can be read")
    sentences = [" ".join(s.split()) for s in parse_sentences(path.read_bytes(), path.name)]
    return check_count(sentences, f"{path.name}", max_sentences)


@dataclass
class Analysis:
    """One model run over a request's sentences; every view below reuses it."""

    results: Results
    predictions: list[Prediction]

    @classmethod
    def run(cls, predictor: Predictor, sentences: list[str]) -> "Analysis":
        results = predictor.run(sentences, show_progress=len(sentences) >= PROGRESS_THRESHOLD)
        return cls(results, predictions(results))

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

    def summary(self, max_tokens: int) -> str:
        count = len(self.texts)
        note = f"Analysed {count:,} sentence{'s' if count != 1 else ''}."
        cut = self.truncated
        if cut:
            rows = ", ".join(str(i + 1) for i in cut[:10]) + (", …" if len(cut) > 10 else "")
            what = "1 sentence was" if len(cut) == 1 else f"{len(cut):,} sentences were"
            note += (f" {what} longer than {max_tokens} word pieces and cut there (row{'s' if len(cut) > 1 else ''} "
                     f"{rows}): only the first {max_tokens} count.")
        return note

    def table(self) -> list[list]:
        return [p.table_row(i + 1) for i, p in enumerate(self.predictions)]

    def label_scores(self, task: str, i: int) -> dict[str, float]:
        """The top labels of one task for sentence i, readable, for a label panel."""
        return {readable_label(label): p for label, p in self.predictions[i][task].top()}

    def colour_labels(self, colour_by: str) -> list[str]:
        """Each sentence's colour label (colour_group); out-of-scope sentences share one neutral label."""
        if colour_by not in self.labels:
            raise ValueError(f"colour_by must be one of {list(self.labels)}, got {colour_by!r}")
        return [OUT_OF_SCOPE if p[colour_by].rejected else colour_group(colour_by, p[colour_by].label)
                for p in self.predictions]

    def most_similar(self, i: int) -> int | None:
        """The other sentence most similar to sentence i (None when there is no other)."""
        if len(self.texts) < 2:
            return None
        cosines = self.embeddings @ self.embeddings[i]  # (N,)
        cosines[i] = -np.inf
        return int(np.argmax(cosines))

    def scope_note(self, i: int, detector: ScopeDetector | None) -> str:
        """Markdown: the scope decision of sentence i and its evidence, or why there is none."""
        if detector is None:
            return "Out-of-scope detection: not in this checkpoint (every sentence gets its closest intent)."
        decision = self.predictions[i][detector.config.head]
        text, label, cosine = detector.nearest(self.embeddings[i])
        verdict = ("**Out of scope**: none of the intents" if decision.rejected else "**In scope**")
        relation = "<" if decision.rejected else "≥"
        return (f"{verdict} (scope score {decision.scope_score:.3f} {relation} threshold "
                f"{detector.config.threshold:.3f}). Nearest training sentence: “{html.escape(text, quote=False)}” "
                f"({readable_label(label)}, cosine {cosine:.2f}).")

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
            writer.writerows([t, *(f"{v:.7g}" for v in vector)] for t, vector in rows)
        return paths


def heatmap_figure(analysis: Analysis, order: str, height: int = 650) -> go.Figure:
    n = min(len(analysis.texts), HEATMAP_MAX)
    title = None
    if n < len(analysis.texts):
        title = f"Cosine similarity of the first {n} of {len(analysis.texts):,} sentences (colour range fixed at -1…1)"
    return similarity_heatmap(analysis.embeddings[:n], analysis.texts[:n], order=order, height=height, title=title)


def neighbours_table(neighbours: list[Neighbour]) -> list[list]:
    """Rows of NEIGHBOUR_HEADERS: cosine, readable label, the whole reference sentence."""
    return [[round(n.cosine, 3), readable_label(n.label), n.text] for n in neighbours]


def colour_group(task: str, label: str) -> str:
    """The name a label is coloured by: its topic group for intents (77 colours would read as noise),
    the readable label otherwise."""
    return intent_group(label) if task == "intent" else readable_label(label)


def colour_map(task: str) -> dict[str, str]:
    """Fixed colours: the intent groups in their order, the sentiments by meaning, out of scope grey."""
    fixed = ({group: GROUP_PALETTE[i] for i, group in enumerate(INTENT_GROUPS)} if task == "intent" else
             SENTIMENT_COLOURS if task == "sentiment" else {})
    return {**fixed, OUT_OF_SCOPE: OUT_OF_SCOPE_COLOUR}


@dataclass(frozen=True)
class MapView:
    """A projection of the request's sentences, optionally on top of the reference map."""

    projection: Projection
    note: str
    final: bool  # False: a stand-in while the reference map or UMAP is not ready; not worth caching
    reference_coords: np.ndarray | None = None
    reference: ReferenceSet | None = None

    def background(self, colour_by: str) -> Background | None:
        """The reference points, coloured when they are examples of the task the map is coloured by."""
        ref = self.reference
        if ref is None:
            return None
        labels = [colour_group(colour_by, label) if source == colour_by else None
                  for source, label in zip(ref.sources, ref.labels, strict=True)]
        hover = [f"[{source}: {readable_label(label)}] {text}"
                 for text, source, label in zip(ref.texts, ref.sources, ref.labels, strict=True)]
        return Background(self.reference_coords, hover, labels)


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


def map_figure(analysis: Analysis, view: MapView, colour_by: str, dims: int, height: int = 650,
               hits: list[Hit] | None = None) -> go.Figure:
    """The map coloured by `colour_by`, search hits ringed."""
    hover = [p.summary() for p in analysis.predictions]
    return projection_scatter(view.projection.coords, analysis.texts, analysis.colour_labels(colour_by), hover,
                              method=view.projection.method, dims=dims, height=height, colour_map=colour_map(colour_by),
                              background=view.background(colour_by), highlight=hit_coords(hits or [], view))


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


def pair_note(analysis: Analysis, i: int, j: int) -> str:
    """Markdown: two sentences side by side with their cosine and both predictions."""
    cosine = float(analysis.embeddings[i] @ analysis.embeddings[j])
    cells = [f"**#{n + 1}** {html.escape(analysis.texts[n], quote=False)}<br>"
             f"<small>{html.escape(analysis.predictions[n].summary(), quote=False)}</small>" for n in (i, j)]
    return f"**Cosine similarity {cosine:.3f}**\n\n| sentence A | sentence B |\n|---|---|\n| {cells[0]} | {cells[1]} |"


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
        """The nearest labelled reference sentences of sentence i, per task ("intent", "sentiment")."""
        ref = builder.map if builder else None
        if ref is None:
            return {}
        return {task: ref.nearest(self.analysis.embeddings[i], NEIGHBOURS, source=task)
                for task in sorted(set(ref.refset.sources))}
