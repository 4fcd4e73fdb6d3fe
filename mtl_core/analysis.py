"""What the app does with one request, free of any UI library: read and limit the input, run the
model once, and derive every view (table, per-sentence details, figures, downloads) from that run.

The Gradio layer (ui.py at the repository root) only wires these functions to components.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from .config import MAX_TOKENS
from .inputs import InputError, parse_sentences, split_lines
from .predict import PROGRESS_THRESHOLD, Predictor, Results, to_csv_rows, to_records, write_csv
from .projection import Projection, project
from .reference import Neighbour, ReferenceBuilder
from .viz import SENTIMENT_COLOURS, projection_scatter, similarity_heatmap

MAX_SENTENCES = 2000  # per request, enforced for every UI action and API endpoint
MAX_CHARS = 4_000_000  # per request: 2,000 sentences of up to 2,000 characters; checked before any parsing
HEATMAP_MAX = 300  # a 2,000 x 2,000 heatmap is ~30 MB of JSON; the API still returns the full matrix
PREVIEW_DIMS = 8
TOP_INTENTS = 5
NEIGHBOURS = 5
TABLE_HEADERS = ["#", "sentence", "intent", "intent confidence", "sentiment", "sentiment confidence"]
NEIGHBOUR_HEADERS = ["cosine", "task", "label", "reference sentence"]
PREVIEW_HEADERS = ["#", "sentence", "norm"] + [f"e{j}" for j in range(PREVIEW_DIMS)]
WORD_CASE = {"atm": "ATM", "pin": "PIN", "id": "ID", "apple": "Apple", "google": "Google",
             "visa": "Visa", "mastercard": "Mastercard"}


def readable_intent(label: str) -> str:
    """'card_arrival' -> 'Card arrival', 'atm_support' -> 'ATM support'."""
    words = [WORD_CASE.get(w.lower(), w.lower()) for w in label.split("_") if w]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def clean_text(text: str) -> str:
    """Replace what cannot be UTF-8 encoded (lone surrogates from a client) instead of failing later."""
    return text.encode("utf-8", errors="replace").decode("utf-8")


def check_count(sentences: list[str], source: str = "the input") -> list[str]:
    if not sentences:
        raise InputError(f"{source} has no sentences: type or paste at least one, one per line")
    if len(sentences) > MAX_SENTENCES:
        raise InputError(f"{source} has {len(sentences):,} sentences; at most {MAX_SENTENCES:,} per request. "
                         "Split it into smaller parts.")
    return sentences


def sentences_from_text(text: str | None) -> list[str]:
    """One sentence per non-blank line, within the per-request limits."""
    text = text or ""
    if len(text) > MAX_CHARS:
        raise InputError(f"the input has {len(text):,} characters; at most {MAX_CHARS:,} per request. "
                         "Split it into smaller parts.")
    return check_count(split_lines(clean_text(text)))


def sentences_from_file(path: str | Path, allowed_folder: str | Path | None = None) -> list[str]:
    """Sentences of an uploaded .txt/.csv, each on one line (so they can go into the textbox).

    With `allowed_folder`, a path outside it is refused: a client cannot make the server read its files.
    """
    path = Path(path)
    if allowed_folder is not None and not path.resolve().is_relative_to(Path(allowed_folder).resolve()):
        raise InputError(f"{path.name}: only files uploaded to this app can be read")
    sentences = [" ".join(s.split()) for s in parse_sentences(path.read_bytes(), path.name)]
    return check_count(sentences, f"{path.name}")


@dataclass
class Analysis:
    """One model run over a request's sentences; every view below reuses it."""

    results: Results
    records: list[dict]
    token_counts: list[int]

    @classmethod
    def run(cls, predictor: Predictor, sentences: list[str]) -> "Analysis":
        results = predictor.run(sentences, show_progress=len(sentences) >= PROGRESS_THRESHOLD)
        return cls(results, to_records(results, TOP_INTENTS), predictor.encoder.token_counts(sentences))

    @property
    def texts(self) -> list[str]:
        return self.results.texts

    @property
    def embeddings(self) -> np.ndarray:
        return self.results.embeddings

    @property
    def truncated(self) -> list[int]:
        """Indices of sentences cut at the encoder's token limit."""
        return [i for i, n in enumerate(self.token_counts) if n >= MAX_TOKENS]

    def summary(self) -> str:
        note = f"Analysed {len(self.texts):,} sentence{'s' if len(self.texts) != 1 else ''}."
        if self.truncated:
            rows = ", ".join(str(i + 1) for i in self.truncated[:10]) + (", …" if len(self.truncated) > 10 else "")
            note += (f" {len(self.truncated)} reached the {MAX_TOKENS}-token limit and were truncated "
                     f"(rows {rows}): only their first {MAX_TOKENS} word pieces count.")
        return note

    def table(self) -> list[list]:
        return [[i + 1, r["text"], readable_intent(r["intent"]["label"]), round(r["intent"]["score"], 3),
                 r["sentiment"]["label"], round(r["sentiment"]["score"], 3)] for i, r in enumerate(self.records)]

    def predictions_line(self, i: int) -> str:
        r = self.records[i]
        return (f"intent: {readable_intent(r['intent']['label'])} ({r['intent']['score']:.2f}) · "
                f"sentiment: {r['sentiment']['label']} ({r['sentiment']['score']:.2f})")

    def intent_scores(self, i: int) -> dict[str, float]:
        return {readable_intent(label): score for label, score in self.records[i]["intent"]["top"]}

    def sentiment_scores(self, i: int) -> dict[str, float]:
        return dict(self.records[i]["sentiment"]["probs"])

    def colour_labels(self, colour_by: str) -> list[str]:
        if colour_by == "intent":
            return [readable_intent(r["intent"]["label"]) for r in self.records]
        if colour_by == "sentiment":
            return [r["sentiment"]["label"] for r in self.records]
        raise ValueError(f"colour_by must be 'intent' or 'sentiment', got {colour_by!r}")

    def embedding_preview(self) -> list[list]:
        """Rows of PREVIEW_HEADERS: sentence, L2 norm, first PREVIEW_DIMS components."""
        norms = np.linalg.norm(self.embeddings, axis=1)
        return [[i + 1, t, round(float(norms[i]), 4), *np.round(self.embeddings[i, :PREVIEW_DIMS], 4).tolist()]
                for i, t in enumerate(self.texts)]

    def write_downloads(self, folder: Path) -> list[Path]:
        """results.csv (the predict CLI's columns), embeddings.npy and embeddings.csv."""
        paths = [folder / "results.csv", folder / "embeddings.npy", folder / "embeddings.csv"]
        write_csv(to_csv_rows(self.records), paths[0])
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
        projection = Projection(ref.transform(embeddings, dims), ref.method(dims))
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
    hover = [analysis.predictions_line(i) for i in range(len(analysis.texts))]
    colours = SENTIMENT_COLOURS if colour_by == "sentiment" else None
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
