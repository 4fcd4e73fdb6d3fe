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
from .records import Prediction, predictions, readable_label, table_headers, write_csv
from .reference import Neighbour, ReferenceBuilder
from .scope import ScopeDetector
from .settings import MAX_CHARS, MAX_SENTENCES
from .viz import SENTIMENT_COLOURS, projection_scatter, similarity_heatmap

OUT_OF_SCOPE = "Out of scope"  # the map's legend entry for sentences that match none of the intents
OUT_OF_SCOPE_COLOUR = "#8c8c8c"  # neutral grey, darker than the faded reference points
HEATMAP_MAX = 300  # a 2,000 x 2,000 heatmap is ~30 MB of JSON; the API still returns the full matrix
PREVIEW_DIMS = 8
NEIGHBOURS = 5
NEIGHBOUR_HEADERS = ["cosine", "task", "label", "reference sentence"]
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

    def table_headers(self) -> list[str]:
        return table_headers(self.labels)

    def label_scores(self, task: str, i: int) -> dict[str, float]:
        """The top labels of one task for sentence i, readable, for a label panel."""
        return {readable_label(label): p for label, p in self.predictions[i][task].top()}

    def colour_labels(self, colour_by: str) -> list[str]:
        """Each sentence's label for the map's colours; out-of-scope sentences share one neutral label."""
        if colour_by not in self.labels:
            raise ValueError(f"colour_by must be one of {list(self.labels)}, got {colour_by!r}")
        return [OUT_OF_SCOPE if p[colour_by].rejected else readable_label(p[colour_by].label) for p in self.predictions]

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
        """Rows of PREVIEW_HEADERS: sentence, L2 norm, first PREVIEW_DIMS components."""
        norms = np.linalg.norm(self.embeddings, axis=1)
        return [[i + 1, t, round(float(norms[i]), 4), *np.round(self.embeddings[i, :PREVIEW_DIMS], 4).tolist()]
                for i, t in enumerate(self.texts)]

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
    return [[round(n.cosine, 3), n.source, n.label, n.text] for n in neighbours]


@dataclass(frozen=True)
class MapView:
    """A projection of the request's sentences, optionally on top of the reference map."""

    projection: Projection
    note: str
    final: bool  # False: a stand-in while the reference map or UMAP is not ready; not worth caching
    reference_coords: np.ndarray | None = None
    reference_hover: list[str] | None = None


def map_view(embeddings: np.ndarray, dims: int, builder: ReferenceBuilder | None, use_reference: bool) -> MapView:
    """The reference map when asked for and ready, else a projection fitted on these sentences only."""
    ref = builder.map if builder else None
    if use_reference and ref is not None:
        projection = Projection(ref.transform(embeddings, dims), ref.method())
        note = f"{projection.method}: {ref.description(dims)}"
        return MapView(projection, note, True, ref.coords(dims), ref.hover())
    umap_ready = builder.umap_ready if builder else True
    projection = project(embeddings, dims, umap_ready=umap_ready)
    note = projection.method
    if use_reference:
        status = builder.status if builder else "no reference map configured"
        note += f". The reference map is not ready ({status}); this map is fitted on your sentences only."
    return MapView(projection, note, final=umap_ready and not (use_reference and builder is not None))


def map_figure(analysis: Analysis, view: MapView, colour_by: str, dims: int, height: int = 650) -> go.Figure:
    hover = [p.summary() for p in analysis.predictions]
    colours = {**(SENTIMENT_COLOURS if colour_by == "sentiment" else {}), OUT_OF_SCOPE: OUT_OF_SCOPE_COLOUR}
    return projection_scatter(view.projection.coords, analysis.texts, analysis.colour_labels(colour_by), hover,
                              method=view.projection.method, dims=dims, height=height, colour_map=colours,
                              reference_coords=view.reference_coords, reference_hover=view.reference_hover)


@dataclass
class Session:
    """Per-browser-session state: the last analysis and the maps drawn from it so far."""

    analysis: Analysis
    maps: dict[tuple[int, bool], MapView] = field(default_factory=dict)

    def map(self, dims: int, builder: ReferenceBuilder | None, use_reference: bool) -> MapView:
        key = (dims, use_reference)
        if key not in self.maps:
            view = map_view(self.analysis.embeddings, dims, builder, use_reference)
            if not view.final:
                return view
            self.maps[key] = view
        return self.maps[key]

    def neighbours(self, i: int, builder: ReferenceBuilder | None) -> list[Neighbour]:
        ref = builder.map if builder else None
        return ref.nearest(self.analysis.embeddings[i], NEIGHBOURS) if ref else []
