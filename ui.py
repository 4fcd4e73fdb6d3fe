"""Gradio layer of the demo: build_demo(predictor, builder) -> gr.Blocks, plus the named API endpoints.

Only wiring lives here; what happens to a request is in mtl_core.analysis (no Gradio there), the
figures in mtl_core.viz. Each request runs the model once; the resulting Analysis is kept per browser
session in gr.State and reused by every view (table, details, heatmap, map, downloads).
"""
from __future__ import annotations

import html
import logging
import os
import re
import shutil
import tempfile
import time
from functools import wraps
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder

from mtl_core.analysis import (HEATMAP_MAX, MAX_SENTENCES, NEIGHBOUR_HEADERS, PREVIEW_DIMS, PREVIEW_HEADERS,
                               TABLE_HEADERS, Analysis, Session, heatmap_figure, map_figure, map_view,
                               neighbours_table, sentences_from_file, sentences_from_text)
from mtl_core.config import MAX_TOKENS
from mtl_core.inputs import InputError
from mtl_core.predict import Predictor
from mtl_core.reference import ReferenceBuilder
from mtl_core.viz import cluster_order, cosine_similarity

log = logging.getLogger(__name__)

# Requests are CPU-bound (one torch forward pass that already uses every core, then UMAP). Two at a
# time lets a short request overtake a 2,000-sentence one; more would only split the same few cores
# (Spaces' free CPU has 2 vCPUs). All heavy events and API endpoints share this one limit.
CONCURRENCY_LIMIT = int(os.environ.get("MTL_CONCURRENCY", "2"))  # measured: benchmarks/load.py, README "Reliability"
HEAVY = {"concurrency_id": "model", "concurrency_limit": CONCURRENCY_LIMIT}
QUEUE_MAX = 32  # beyond this many waiting requests, new ones are refused at once instead of timing out
MAX_FILE_SIZE = "2mb"  # passed to launch(); ~2,000 sentences of 1 kB each
DOWNLOAD_MAX_AGE_S = 600  # Gradio copies returned files into its own cache at once; ours can go soon
SESSION_TTL_S = 3600  # an idle session's analysis (up to ~3 MB of embeddings) is dropped after this
CACHE_CLEANUP = (1800, 3600)  # every 30 min, delete Gradio's cached uploads/downloads older than 1 h

EXAMPLES = [
    "I love the new update, transfers are instant!\nThe app keeps crashing when I open my statement.\n"
    "It's okay, nothing special.",
    "My card still hasn't arrived after two weeks.\nWhy was I charged a fee for taking out cash?\n"
    "How do I change my PIN?\nI think someone stole my card, please block it.",
    "Thanks, the refund finally showed up!\nThe exchange rate you gave me was terrible.\n"
    "Can I add my card to Apple Pay?\nTransfer failed again, this is so frustrating.\n"
    "Great support, they fixed my blocked PIN in minutes.",
]
LIMITS = (f"One sentence per line, at most **{MAX_SENTENCES:,} sentences** per request. Uploads: .txt "
          f"(one sentence per line) or .csv (a `text` column), at most {MAX_FILE_SIZE.upper()}. Sentences "
          f"longer than {MAX_TOKENS} word pieces are truncated (you are told which).")
ABOUT = f"""
### What this is
One shared sentence encoder (all-MiniLM-L6-v2, mean-pooled, unit-length 384-dimensional embeddings)
feeds two task heads in a single pass: **Task A**, the customer-support intent (77 Banking77 intents),
and **Task B**, the sentiment (negative / neutral / positive).

### Reading the views
- **Predictions**: each head's most likely label and its probability; select a row for the top-5
  intents, the three sentiment probabilities and the nearest labelled reference sentences (cosine).
- **Similarity heatmap**: cosine similarity of every pair, on a fixed colour range from -1 to 1;
  "cluster" orders rows by average-linkage clustering so groups show as blocks. Up to {HEATMAP_MAX}
  sentences are drawn (the `/similarity` API returns the full matrix).
- **Map**: UMAP (cosine) of the embeddings, or PCA when there are too few sentences for UMAP; the
  method used is written on the figure. The reference map places your sentences with `transform` on a
  UMAP fitted once on labelled example sentences, so even a few sentences land among meaningful
  neighbours.

Training, evaluation and the measured results are described in the project's README.
"""
ROOT = Path(__file__).resolve().parent
FIGURES = ROOT / "docs" / "figures"  # experiment plots; app.py passes this folder to launch(allowed_paths=...)


def experiments_markdown() -> str:
    """The README's Discussion (the measured answers to the design questions), for the About tab."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    _, found, rest = readme.partition("\n## Discussion\n")
    body = rest.split("\n## ", 1)[0].strip() if found else "(see docs/experiments.md in the repository)"
    body = re.sub(r"\[([^\]]+)\]\((?!https?:)[^)]*\)", r"\1", body)  # repository-relative links lead nowhere here
    return ("### Experiments: what to freeze, multi-task or not, little data\n" + body +
            "\n\nThe full write-up with every table and the commands behind it is `docs/experiments.md` in "
            "the repository.")


def escaped(message: str) -> str:
    """User-controlled text (file names, sentences) shown in Markdown or toasts must stay text."""
    return html.escape(message, quote=False)


def api_errors(fn):
    """Bad input to an API endpoint becomes a gr.Error with the reason (the client raises it)."""
    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as err:
            raise gr.Error(escaped(str(err)), print_exception=False) from err
    return wrapper


class Downloads:
    """Scratch folders for the files a request offers, under one fixed root shared by all app processes
    (so restarts leave nothing behind); folders older than DOWNLOAD_MAX_AGE_S are pruned on each use."""

    def __init__(self) -> None:
        self._root = Path(tempfile.gettempdir()) / "mtl_app_downloads"
        self._root.mkdir(exist_ok=True)

    def new_folder(self) -> Path:
        cutoff = time.time() - DOWNLOAD_MAX_AGE_S
        for old in self._root.iterdir():
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(dir=self._root))


class Handlers:
    """The functions behind the UI events and the API endpoints."""

    def __init__(self, predictor: Predictor, builder: ReferenceBuilder | None):
        self.predictor = predictor
        self.builder = builder
        self.downloads = Downloads()

    # ---- UI events -------------------------------------------------------------------------------

    def load_file(self, path: str | None) -> tuple:
        """Put an uploaded file's sentences into the textbox, so what gets analysed is visible; the
        upload box is emptied again (None), ready for the next file."""
        if not path:
            return gr.skip(), gr.skip(), None
        try:
            sentences = sentences_from_file(path, get_upload_folder())
        except InputError as err:
            gr.Warning(escaped(str(err)))
            return gr.skip(), escaped(f"⚠️ {err}"), None
        message = f"Loaded {len(sentences):,} sentences from {Path(path).name}; press Analyse."
        return "\n".join(sentences), escaped(message), None

    def analyse(self, text: str, order: str, colour_by: str, dims: int, use_reference: bool,
                progress: gr.Progress = gr.Progress(track_tqdm=True)) -> tuple:
        try:
            sentences = sentences_from_text(text)
        except InputError as err:
            gr.Warning(escaped(str(err)))
            return (escaped(f"⚠️ {err}"), *[gr.skip()] * 12)  # the 12 other outputs keep the last results
        progress(0.05, desc="Embedding and predicting")
        session = Session(Analysis.run(self.predictor, sentences))
        analysis = session.analysis
        progress(0.6, desc="Similarity heatmap")
        heatmap, heatmap_error = guarded("heatmap", heatmap_figure, analysis, order)
        progress(0.7, desc="Map")
        map_outputs, map_error = guarded("map", self.map_outputs, session, colour_by, dims, use_reference)
        map_plot, map_note = map_outputs or (None, f"⚠️ {map_error}")
        progress(0.9, desc="Files")
        files = [str(p) for p in analysis.write_downloads(self.downloads.new_folder())]
        choices = [(f"{i + 1}: {t[:80]}", i) for i, t in enumerate(analysis.texts)]
        summary = " ".join([escaped(analysis.summary())] + [f"⚠️ {e}" for e in (heatmap_error, map_error) if e])
        return (summary, session, analysis.table(), gr.update(choices=choices, value=0),
                *self.details(session, 0), heatmap, map_plot, map_note, analysis.embedding_preview(), files)

    def details(self, session: Session | None, i: int | None) -> tuple:
        """Top-5 intents, sentiment probabilities and nearest reference sentences of sentence i."""
        if session is None or i is None:
            return (gr.skip(),) * 4
        analysis = session.analysis
        neighbours = session.neighbours(i, self.builder)
        note = (f"Nearest reference sentences to **#{i + 1}**" if neighbours else
                "Nearest reference sentences: " + escaped(self.builder.status if self.builder else "none configured"))
        return analysis.intent_scores(i), analysis.sentiment_scores(i), neighbours_table(neighbours), note

    def select_row(self, session: Session | None, evt: gr.SelectData) -> tuple:
        i = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        return (i, *self.details(session, i))

    def map_outputs(self, session: Session, colour_by: str, dims: int, use_reference: bool) -> tuple:
        view = session.map(int(dims), self.builder, use_reference)
        return map_figure(session.analysis, view, colour_by, int(dims)), f"**Map method:** {escaped(view.note)}"

    def redraw_map(self, session: Session | None, colour_by: str, dims: int, use_reference: bool) -> tuple:
        if session is None:
            return gr.skip(), gr.skip()
        return self.map_outputs(session, colour_by, dims, use_reference)

    def redraw_heatmap(self, session: Session | None, order: str):
        return gr.skip() if session is None else heatmap_figure(session.analysis, order)

    # ---- API endpoints (gradio_client): the sentences first, one per line; JSON-friendly results ---

    def api_predict(self, text: str) -> list[dict]:
        """Intent and sentiment of each sentence (one per line): a record per sentence with the label,
        its probability, the top-5 intents, the three sentiment probabilities and whether it was truncated."""
        return prediction_records(Analysis.run(self.predictor, sentences_from_text(text)))

    def api_embed(self, text: str) -> dict:
        """Unit-length sentence embeddings: {"texts": [...], "embeddings": [[...384 floats], ...]}."""
        sentences = sentences_from_text(text)
        return {"texts": sentences, "embeddings": self.predictor.embed(sentences).tolist()}

    def api_similarity(self, text: str, order: str = "input") -> dict:
        """Cosine similarity matrix of all pairs: {"texts", "matrix"}, rows in `order`
        ("input", or "cluster": average-linkage leaf order), with "order" giving the input indices."""
        check_order(order)
        sentences = sentences_from_text(text)
        return similarity_payload(sentences, self.predictor.embed(sentences), order)

    def api_projection(self, text: str, dims: int = 2, reference: bool = True) -> dict:
        """2-D or 3-D coordinates of each sentence and the method that produced them (on the reference
        map when `reference` is true and the map is ready; the "method" says which)."""
        check_dims(dims)
        sentences = sentences_from_text(text)
        return self.projection_payload(sentences, self.predictor.embed(sentences), dims, reference)

    def api_analyse(self, text: str, order: str = "input", dims: int = 2, reference: bool = True) -> dict:
        """The Analyse button in one call and one model pass: {"predictions": as /predict,
        "similarity": as /similarity for the first HEATMAP_MAX sentences (what the heatmap draws),
        "projection": as /projection}."""
        check_order(order)
        check_dims(dims)
        analysis = Analysis.run(self.predictor, sentences_from_text(text))
        texts, embeddings = analysis.texts, analysis.embeddings
        similarity, similarity_error = guarded("similarity", similarity_payload, texts[:HEATMAP_MAX],
                                               embeddings[:HEATMAP_MAX], order)
        projection, projection_error = guarded("projection", self.projection_payload, texts, embeddings, dims,
                                               reference)
        return {"predictions": prediction_records(analysis),
                "similarity": similarity or {"error": similarity_error},
                "projection": projection or {"error": projection_error}}

    def projection_payload(self, texts: list[str], embeddings, dims: int, reference: bool) -> dict:
        view = map_view(embeddings, dims, self.builder, reference)
        return {"texts": texts, "coords": view.projection.coords.astype(float).round(4).tolist(),
                "method": view.projection.method, "note": view.note}


def guarded(view: str, build, *args) -> tuple:
    """(build(*args), None), or (None, message) when that one view fails: the error is logged and the
    request still returns every other view."""
    try:
        return build(*args), None
    except Exception:  # noqa: BLE001 - any bug in one view must not cost the user the others
        log.exception("the %s view failed", view)
        return None, f"The {view} could not be computed (an internal error, logged on the server); the other results are complete."


def check_order(order: str) -> None:
    if order not in ("input", "cluster"):
        raise InputError(f"order must be 'input' or 'cluster', got {order!r}")


def check_dims(dims: int) -> None:
    if dims not in (2, 3):
        raise InputError(f"dims must be 2 or 3, got {dims!r}")


def prediction_records(analysis: Analysis) -> list[dict]:
    truncated = set(analysis.truncated)
    return [{**r, "truncated": i in truncated} for i, r in enumerate(analysis.records)]


def similarity_payload(texts: list[str], embeddings, order: str) -> dict:
    similarity = cosine_similarity(embeddings)
    idx = [int(i) for i in (cluster_order(similarity) if order == "cluster" else range(len(texts)))]
    return {"texts": [texts[i] for i in idx], "order": idx,
            "matrix": similarity[idx][:, idx].astype(float).round(4).tolist()}


def build_demo(predictor: Predictor, builder: ReferenceBuilder | None = None, *,
               banner: str | None = None) -> gr.Blocks:
    """The app, with its queue configured; call .launch() on the result."""
    h = Handlers(predictor, builder)
    with gr.Blocks(title="Multi-task sentence transformer", delete_cache=CACHE_CLEANUP) as demo:
        gr.Markdown("## Multi-task sentence transformer\nIntent (Banking77) and sentiment from one "
                    "shared all-MiniLM-L6-v2 pass, with similarity and map views of the embeddings.")
        if banner:
            gr.Markdown(f"> ⚠️ **{banner}**", elem_id="untrained-banner")
        with gr.Tab("Analyse"):
            with gr.Row():
                with gr.Column(scale=3):
                    text = gr.Textbox(label="Sentences (one per line)", lines=6, max_lines=14,
                                      placeholder="Type or paste sentences, one per line", elem_id="sentences")
                    with gr.Row():
                        run = gr.Button("Analyse", variant="primary", elem_id="analyse")
                        gr.ClearButton([text], value="Clear")
                with gr.Column(scale=2):
                    upload = gr.File(label="…or upload a .txt / .csv", file_types=[".txt", ".csv"], type="filepath",
                                     elem_id="upload")
                    gr.Markdown(LIMITS)
            gr.Examples([[e] for e in EXAMPLES], inputs=[text], label="Examples (click to fill the box)")
            status = gr.Markdown(elem_id="status")
            session = gr.State(None, time_to_live=SESSION_TTL_S)
            table = gr.Dataframe(headers=TABLE_HEADERS, datatype=["number", "str", "str", "number", "str", "number"],
                                 interactive=False, wrap=True, max_height=420, label="Predictions (select a row)",
                                 column_widths=["5%", "45%", "20%", "10%", "10%", "10%"],
                                 elem_id="predictions")
            with gr.Row():
                with gr.Column(scale=2):
                    chooser = gr.Dropdown(choices=[], label="Selected sentence", interactive=True, elem_id="chooser")
                    intent_label = gr.Label(num_top_classes=5, label="Task A: top-5 intents")
                    sentiment_label = gr.Label(num_top_classes=3, label="Task B: sentiment")
                with gr.Column(scale=3):
                    neighbours_note = gr.Markdown("Nearest reference sentences", elem_id="neighbours-note")
                    neighbours = gr.Dataframe(headers=NEIGHBOUR_HEADERS, datatype=["number", "str", "str", "str"],
                                              interactive=False, wrap=True, show_label=False)
            with gr.Row():
                with gr.Column():
                    order = gr.Radio([("input order", "input"), ("clustered", "cluster")], value="input",
                                     label="Heatmap row order")
                    heatmap = gr.Plot(label="Cosine similarity", elem_id="heatmap")
                with gr.Column():
                    with gr.Row():
                        colour_by = gr.Radio(["intent", "sentiment"], value="intent", label="Colour by")
                        dims = gr.Radio([("2-D", 2), ("3-D", 3)], value=2, label="Dimensions")
                        use_reference = gr.Checkbox(value=True, label="Place on the reference map")
                    map_plot = gr.Plot(label="Map", elem_id="map")
                    map_note = gr.Markdown()
            with gr.Accordion("Embeddings and downloads", open=False):
                gr.Markdown(f"The first {PREVIEW_DIMS} of 384 dimensions and the vector's L2 norm (1: unit "
                            "length). The files hold everything: results.csv has the predict CLI's columns.")
                embeddings = gr.Dataframe(headers=PREVIEW_HEADERS, interactive=False, max_height=300, show_label=False)
                files = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="downloads")
        with gr.Tab("About"):
            gr.Markdown(ABOUT)
            gr.Markdown(experiments_markdown(), elem_id="experiments")
            figures = sorted(FIGURES.glob("*.png"))
            if figures:
                gr.Gallery([str(f) for f in figures], columns=2, height="auto", label="Experiment figures",
                           show_label=True)

        details = [intent_label, sentiment_label, neighbours, neighbours_note]
        map_inputs = [session, colour_by, dims, use_reference]
        private = {"api_visibility": "private"}  # UI plumbing; the API is /load_file and the five endpoints below
        # Public as /load_file so API clients can send files too: returns (sentences, message, None).
        upload.upload(h.load_file, [upload], [text, status, upload], api_name="load_file")
        run.click(h.analyse, [text, order, colour_by, dims, use_reference],
                  [status, session, table, chooser, *details, heatmap, map_plot, map_note, embeddings, files],
                  api_name="analyse_button", **private, **HEAVY)  # the public /analyse returns JSON instead
        light = {**private, "concurrency_limit": None}  # reads the stored analysis only: never queue behind the model
        table.select(h.select_row, [session], [chooser, *details], **light)
        chooser.input(h.details, [session, chooser], details, **light)
        order.change(h.redraw_heatmap, [session, order], [heatmap], **light)
        for control in (colour_by, dims, use_reference):
            control.change(h.redraw_map, map_inputs, [map_plot, map_note], **private, **HEAVY)

        for name in ("analyse", "predict", "embed", "similarity", "projection"):
            gr.api(api_errors(getattr(h, f"api_{name}")), api_name=name, **HEAVY)
    demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=QUEUE_MAX)
    return demo
