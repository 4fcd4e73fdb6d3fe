"""Event handlers: each returns its outputs by component (a dict), so no handler keeps a tuple in step
with an outputs list, and an output left out keeps what it shows. The work itself is done by
mtl_core.service.Service and mtl_core.analysis; here it is only put into components.
"""
from __future__ import annotations

import html
from functools import wraps
from typing import TYPE_CHECKING

import gradio as gr
from gradio.utils import get_upload_folder

from mtl_core.analysis import Session, heatmap_figure, map_figure, neighbours_table, pair_note
from mtl_core.records import readable_label
from mtl_core.inputs import InputError
from mtl_core.service import Service, guarded
from mtl_core.viz import word_highlights

from . import texts

if TYPE_CHECKING:
    from .layout import Components


PROGRESS_FROM = 100  # sentences; smaller requests answer before a progress bar would be read


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


def register_api(service: Service) -> None:
    """The public endpoints, by name; each is a plain Service method (see mtl_core/service.py)."""
    heavy = model_queue(service)
    gr.api(api_errors(service.analyse), api_name="analyse", **heavy)
    gr.api(api_errors(service.predict), api_name="predict", **heavy)
    gr.api(api_errors(service.embed), api_name="embed", **heavy)
    gr.api(api_errors(service.similarity), api_name="similarity", **heavy)
    gr.api(api_errors(service.projection), api_name="projection", **heavy)
    gr.api(api_errors(service.search), api_name="search", **heavy)
    gr.api(api_errors(service.explain), api_name="explain", **heavy)


def model_queue(service: Service) -> dict:
    """Requests are CPU-bound (one torch pass that already uses every core, then UMAP): every event that
    runs the model shares one queue of `concurrency` at a time (2 by default: a short request can
    overtake a 2,000-sentence one; more would only split the same cores; measured with benchmarks/load.py)."""
    return {"concurrency_id": "model", "concurrency_limit": service.settings.concurrency}


class Events:
    """The UI's handlers and their wiring to the components."""

    def __init__(self, service: Service, components: "Components"):
        self.service = service
        self.c = components

    # ---- handlers --------------------------------------------------------------------------------

    def analyse(self, text: str, order: str, colour_by: str, dims: int, use_reference: bool,
                progress: gr.Progress = gr.Progress()) -> dict:
        """The table and both figures; the details panel and the files follow in their own steps, so the
        views appear first. A progress bar only for requests long enough to need one (each update is a
        message to the browser: measured, they cost more than they tell on a 10-sentence request)."""
        c = self.c
        try:
            sentences = self.service.sentences(text)
        except InputError as err:
            gr.Warning(escaped(str(err)))
            return {c.status: escaped(f"⚠️ {err}")}  # every other view keeps the last results
        report = progress if len(sentences) >= PROGRESS_FROM else lambda *_args, **_kwargs: None
        report(0.05, desc="Embedding and predicting")
        session = Session(self.service.run_sentences(sentences))
        analysis = session.analysis
        report(0.6, desc="Similarity heatmap")
        heatmap, heatmap_error = guarded("heatmap", heatmap_figure, analysis, order)
        report(0.7, desc="Map")
        map_outputs, map_error = guarded("map", self.map_outputs, session, colour_by, dims, use_reference)
        choices = [(f"{i + 1}: {t[:80]}", i) for i, t in enumerate(analysis.texts)]
        summary = " ".join([escaped(analysis.summary(self.service.predictor.encoder.max_tokens))] +
                           [f"⚠️ {e}" for e in (heatmap_error, map_error) if e])
        return {c.status: summary, c.session: session, c.table: analysis.table(),
                c.chooser: gr.update(choices=choices, value=0), c.compare: gr.update(choices=choices, value=None),
                c.heatmap: heatmap, c.hits: None, **(map_outputs or {c.map_plot: None, c.map_note: f"⚠️ {map_error}"})}

    def after_analyse(self, session: Session | None) -> dict:
        """The details of the first sentence, the embedding preview and the download files: made once the
        views are on screen (the embeddings CSV alone takes ~0.5 s at 1,000 sentences). The word
        explanations follow in a third step (explain_selected): they take ~0.3 s."""
        if session is None:
            return {}
        analysis = session.analysis
        paths = analysis.write_downloads(self.service.downloads.new_folder())
        return {**self.details(session, 0, explain=False), self.c.embeddings: analysis.embedding_preview(),
                self.c.files: [str(p) for p in paths]}

    def upload(self, path: str | None, *view_options) -> dict:
        """Read an uploaded file into the textbox (so what gets analysed is visible) and analyse it."""
        c = self.c
        if not path:
            return {}
        try:
            loaded = self.service.load_file(path, get_upload_folder())
        except InputError as err:
            gr.Warning(escaped(str(err)))
            return {c.status: escaped(f"⚠️ {err}"), c.upload: None}
        return {**self.analyse(loaded["text"], *view_options), c.text: loaded["text"], c.upload: None}

    def api_load_file(self, path: str | None) -> tuple[str, str]:
        """/load_file for API clients: (the file's sentences one per line, a message); a bad file gives
        ("", "⚠️ reason")."""
        if not path:
            return "", "⚠️ no file was sent"
        try:
            loaded = self.service.load_file(path, get_upload_folder())
        except InputError as err:
            return "", escaped(f"⚠️ {err}")
        return loaded["text"], escaped(loaded["message"])

    def clear(self) -> dict:
        """Empty the box and every view."""
        c = self.c
        return {c.text: "", c.status: "", c.session: None, c.table: None, c.chooser: gr.update(choices=[], value=None),
                c.compare: gr.update(choices=[], value=None), c.pair: "", c.query: "", c.hits: None,
                **{label: None for label in c.task_labels.values()}, c.scope_note: "",
                **{box: "" for box in c.explanations.values()},
                **{table: None for table in c.neighbours.values()},
                c.neighbours_note: "Nearest reference sentences", c.heatmap: None, c.map_plot: None, c.map_note: "",
                c.embeddings: None, c.files: None}

    def details(self, session: Session | None, i: int | None, explain: bool = True) -> dict:
        """Each task's top labels, the scope evidence, the nearest reference sentences per task of
        sentence i, and i side by side with its most similar other sentence."""
        c = self.c
        if session is None or i is None:
            return {}
        analysis, builder = session.analysis, self.service.builder
        neighbours = session.neighbours(i, builder)
        note = (f"Nearest reference sentences to **#{i + 1}**" if neighbours else
                "Nearest reference sentences: " + escaped(builder.status if builder else "none configured"))
        panels = {label: gr.update(value=analysis.label_scores(task, i),
                                   label=texts.task_title(task, analysis.predictions[i][task].rejected))
                  for task, label in c.task_labels.items()}
        tables = {table: neighbours_table(neighbours.get(task, [])) for task, table in c.neighbours.items()}
        partner = analysis.most_similar(i)
        explanations = (self.explain_selected(session, i) if explain else
                        {box: texts.EXPLAIN_PENDING for box in c.explanations.values()})
        return {**panels, c.scope_note: analysis.scope_note(i, self.service.predictor.scope), **tables,
                **explanations, c.neighbours_note: note, c.compare: partner,
                c.pair: "" if partner is None else pair_note(analysis, i, partner)}

    def explanation(self, text: str, task: str, label: str | None = None) -> str:
        """HTML: the sentence coloured by each word's push towards `task`'s label (None: the predicted one)."""
        [found] = self.service.predictor.explain([text], task, label)
        return (texts.explanation_title(task, readable_label(found.label), found.probability) +
                word_highlights(text, found.spans, found.scores))

    def explain_selected(self, session: Session | None, i: int | None) -> dict:
        """Why sentence i got each label; after Analyse, its own last step, so it never delays the views."""
        if session is None or i is None:
            return {}
        return {box: self.explanation(session.analysis.texts[i], task) for task, box in self.c.explanations.items()}

    def explain_label(self, session: Session | None, i: int | None, evt: gr.SelectData) -> dict:
        """A label clicked in a top list: explain that label instead of the predicted one."""
        if session is None or i is None:
            return {}
        for task, component in self.c.task_labels.items():
            if evt.target is component:
                ids = {readable_label(label): label for label in session.analysis.labels[task]}
                label = ids.get(str(evt.value))
                if label is not None:
                    return {self.c.explanations[task]: self.explanation(session.analysis.texts[i], task, label)}
        return {}

    def pair(self, session: Session | None, i: int | None, j: int | None) -> dict:
        if session is None or i is None or j is None:
            return {}
        return {self.c.pair: pair_note(session.analysis, i, j)}

    def search(self, session: Session | None, query: str, colour_by: str, dims: int, use_reference: bool) -> dict:
        """The sentences most like the query, listed and ringed on the map."""
        c = self.c
        if session is None:
            gr.Warning("Analyse some sentences first; the search looks among them and the reference sentences.")
            return {}
        try:
            session.hits = self.service.search_hits(session.analysis, query)
        except InputError as err:
            gr.Warning(escaped(str(err)))
            return {}
        return {c.hits: [h.row() for h in session.hits], **self.map_outputs(session, colour_by, dims, use_reference)}

    def select_row(self, session: Session | None, evt: gr.SelectData) -> dict:
        i = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        return {self.c.chooser: i, **self.details(session, i)}

    def map_outputs(self, session: Session, colour_by: str, dims: int, use_reference: bool) -> dict:
        view = session.map(int(dims), self.service.builder, use_reference)
        return {self.c.map_plot: map_figure(session.analysis, view, colour_by, int(dims), hits=session.hits),
                self.c.map_note: f"**Map method:** {escaped(view.note)}"}

    def redraw_map(self, session: Session | None, colour_by: str, dims: int, use_reference: bool) -> dict:
        return {} if session is None else self.map_outputs(session, colour_by, dims, use_reference)

    def redraw_heatmap(self, session: Session | None, order: str) -> dict:
        return {} if session is None else {self.c.heatmap: heatmap_figure(session.analysis, order)}

    # ---- wiring ----------------------------------------------------------------------------------

    def wire(self) -> None:
        c = self.c
        details = [*c.task_labels.values(), c.scope_note, *c.explanations.values(), *c.neighbours.values(),
                   c.neighbours_note, c.compare, c.pair]
        views = [c.status, c.session, c.table, c.chooser, c.compare, c.heatmap, c.map_plot, c.map_note, c.hits]
        everything = [*views, *details, c.embeddings, c.files]
        view_options = [c.order, c.colour_by, c.dims, c.use_reference]
        private = {"api_visibility": "private"}  # UI plumbing; the public API is registered in register_api
        heavy = {**private, **model_queue(self.service)}
        light = {**private, "concurrency_limit": None}  # reads the stored analysis only: never queue behind the model

        after = {"fn": self.after_analyse, "inputs": [c.session], "outputs": [*details, c.embeddings, c.files], **light}
        explain = {"fn": self.explain_selected, "inputs": [c.session, c.chooser],
                   "outputs": list(c.explanations.values()), **heavy}
        c.run.click(self.analyse, [c.text, *view_options], views, api_name="analyse_button",
                    **heavy).then(api_name="after_button", **after).then(api_name="explain_button", **explain)
        c.examples.load_input_event.then(self.analyse, [c.text, *view_options], views, api_name="analyse_example",
                                         **heavy).then(api_name="after_example", **after).then(
                                             api_name="explain_example", **explain)
        c.upload.upload(self.upload, [c.upload, *view_options], [c.text, c.upload, *views],
                        api_name="upload_and_analyse", **heavy).then(api_name="after_upload", **after).then(
                            api_name="explain_upload", **explain)
        c.clear.click(self.clear, None, [c.text, c.query, *everything], api_name="clear", **light)
        c.compare.input(self.pair, [c.session, c.chooser, c.compare], [c.pair], **light)
        for label in c.task_labels.values():
            label.select(self.explain_label, [c.session, c.chooser], list(c.explanations.values()), **heavy)
        search_inputs = [c.session, c.query, c.colour_by, c.dims, c.use_reference]
        for trigger in (c.search.click, c.query.submit):
            trigger(self.search, search_inputs, [c.hits, c.map_plot, c.map_note], api_name="search_button", **heavy)
        c.table.select(self.select_row, [c.session], [c.chooser, *details], **light)
        c.chooser.input(self.details, [c.session, c.chooser], details, **light)
        c.order.change(self.redraw_heatmap, [c.session, c.order], [c.heatmap], **light)
        for control in (c.colour_by, c.dims, c.use_reference):
            control.change(self.redraw_map, [c.session, c.colour_by, c.dims, c.use_reference],
                           [c.map_plot, c.map_note], **heavy)
        # Public as /load_file so API clients can send files too; in the page the upload handler above does the work.
        api_text, api_message = gr.Textbox(visible=False), gr.Markdown(visible=False)
        c.upload.upload(self.api_load_file, [c.upload], [api_text, api_message], api_name="load_file")
