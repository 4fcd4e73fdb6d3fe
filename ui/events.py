"""Event handlers: each returns its outputs by component (a dict), so no handler keeps a tuple in step
with an outputs list, and an output left out keeps what it shows; gr.skip() when there is nothing to
update (Gradio reads an empty dict as one value for every output, and fails). The work itself is done by
mtl_core.serving.service.Service (the only door to the model); here it is only put into components.

Tasks are data: every per-task component is made for each of the checkpoint's tasks, plus one spare
slot (EXTRA) that a session's own task takes when it has one.
"""
from __future__ import annotations

import html
import time
from functools import wraps
from typing import TYPE_CHECKING

import gradio as gr
from gradio.components.label import LabelConfidence, LabelData
from gradio.utils import get_upload_folder

from mtl_core.serving.records import readable_label
from mtl_core.serving.service import Analysis, ExampleTask, InputError, Neighbour, Service, Session, guarded
from ui.figures import heatmap_figure, map_figure, word_highlights

from . import texts

if TYPE_CHECKING:
    from .layout import Components


PROGRESS_FROM = 100  # sentences; smaller requests answer before a progress bar would be read
EXTRA = "+yours"  # the key of the spare per-task components a session's own task takes (no task is named so)
# The predictions table's columns, in % of its width (at least 1,100 px: layout.CSS): a task's confidence column
# fits "confidence" on one line, its label column "— none (closest: …)" on three
NUMBER_SHARE = 4
TASK_SHARES = (12, 9)  # label, confidence
SENTENCE_MIN_SHARE = 33  # three tasks still fit beside it


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
    """The public endpoints, by name; each is a plain Service method (see mtl_core/serving/service.py)."""
    heavy = model_queue(service)
    for endpoint in (service.analyse, service.predict, service.embed, service.similarity, service.projection,
                     service.search, service.explain, service.task_predict):
        gr.api(api_errors(endpoint), api_name=endpoint.__name__, **heavy)


def model_queue(service: Service) -> dict:
    """Requests are CPU-bound (one torch pass that already uses every core, then UMAP): every event that
    runs the model shares one queue of `concurrency` at a time (2 by default: a short request can
    overtake a 2,000-sentence one; more would only split the same cores; measured with benchmarks/load.py)."""
    return {"concurrency_id": "model", "concurrency_limit": service.concurrency}


def table_layout(labels: dict[str, list[str]]) -> dict:
    """The predictions table's headers, types and widths (% of the table's box) for these tasks: each task's
    label and confidence columns keep their width, the sentence takes what they leave down to
    SENTENCE_MIN_SHARE; beyond that (a fourth task) the table is wider than its box and scrolls sideways."""
    label_share, score_share = TASK_SHARES
    sentence = max(100 - NUMBER_SHARE - len(labels) * (label_share + score_share), SENTENCE_MIN_SHARE)
    return {"headers": texts.table_headers(labels), "datatype": ["number", "str"] + ["str", "number"] * len(labels),
            "column_widths": [f"{NUMBER_SHARE}%", f"{sentence}%"] + [f"{label_share}%", f"{score_share}%"] * len(labels)}


def neighbours_table(neighbours: list[Neighbour]) -> list[list]:
    """Rows of texts.NEIGHBOUR_HEADERS: cosine, readable label, the whole sentence."""
    return [[round(n.cosine, 3), readable_label(n.label), n.text] for n in neighbours]


def label_value(analysis: Analysis, task: str, i: int) -> dict | LabelData:
    """A label panel's value: the top labels; for an out-of-scope sentence headed "None of the 77 intents"."""
    prediction = analysis.predictions[i][task]
    scores = {readable_label(label): p for label, p in prediction.top()}
    if not prediction.rejected:
        return scores
    return LabelData(label=texts.none_heading(task, len(analysis.labels[task])),
                     confidences=[LabelConfidence(label=label, confidence=p) for label, p in scores.items()])


class Events:
    """The UI's handlers and their wiring to the components."""

    def __init__(self, service: Service, components: "Components"):
        self.service = service
        self.c = components

    def slot(self, task: str) -> str:
        """The key of a task's components: its own for the checkpoint's tasks, EXTRA for a session's task."""
        return task if task in self.c.task_labels else EXTRA

    def session_task(self, token: str | None) -> tuple[ExampleTask | None, str | None]:
        """The session's own task, and a warning when the server no longer keeps it."""
        task = self.service.task_for(token)
        return task, (texts.TASK_EXPIRED if token and task is None else None)

    # ---- handlers --------------------------------------------------------------------------------

    def analyse(self, text: str, order: str, colour_by: str, dims: int, use_reference: bool, token: str | None = None,
                progress: gr.Progress = gr.Progress()) -> dict:  # noqa: B008 - Gradio injects the bar through this default
        """The table and both figures; the details panel and the files follow in their own steps, so the
        views appear first. A progress bar only for requests long enough to need one (each update is a
        message to the browser: measured, they cost more than they tell on a 10-sentence request)."""
        c = self.c
        try:
            sentences = self.service.sentences(text)
        except InputError as err:
            gr.Warning(escaped(str(err)))
            return {c.status: escaped(f"⚠️ {err}")}  # every other view keeps the last results
        task, expired = self.session_task(token)
        report = progress if len(sentences) >= PROGRESS_FROM else lambda *_args, **_kwargs: None
        report(0.05, desc="Embedding and predicting")
        session = Session(self.service.run_sentences(sentences, task))
        analysis = session.analysis
        tasks = list(analysis.labels)
        colour_by = colour_by if colour_by in tasks else tasks[0]
        report(0.6, desc="Similarity heatmap")
        heatmap, heatmap_error = guarded("heatmap", heatmap_figure, analysis, order)
        report(0.7, desc="Map")
        map_outputs, map_error = guarded("map", self.map_outputs, session, colour_by, dims, use_reference)
        choices = [(f"{i + 1}: {t[:80]}", i) for i, t in enumerate(analysis.texts)]
        summary = " ".join([escaped(texts.summary(len(analysis.texts), analysis.truncated, self.service.max_tokens))] +
                           [f"⚠️ {e}" for e in (heatmap_error, map_error, expired) if e])
        return {c.status: summary, c.session: session,
                c.table: gr.Dataframe(value=analysis.table(), **table_layout(analysis.labels)),
                c.chooser: gr.update(choices=choices, value=0), c.compare: gr.update(choices=choices, value=None),
                c.colour_by: gr.update(choices=tasks, value=colour_by), c.heatmap: heatmap, c.hits: None,
                **(map_outputs or {c.map_plot: None, c.map_note: f"⚠️ {map_error}"})}

    def after_analyse(self, session: Session | None, downloads_open: bool) -> dict:
        """The details of the first sentence, made once the views are on screen; the embedding preview and
        the download files only while their accordion is open (building them costs ~0.2 s at 1,000
        sentences, on every Analyse, for a panel most never open). The word explanations follow in a
        third step (explain_selected): they take ~0.3 s."""
        if session is None:
            return gr.skip()
        return {**self.details(session, 0, explain=False), **self.downloads(session, downloads_open)}

    def downloads(self, session: Session | None, built: bool = True) -> dict:
        """The embedding preview and the files of the session's analysis (empty when not `built`)."""
        c = self.c
        if session is None or not built:
            return {c.embeddings: None, c.files: None}
        paths = self.service.write_downloads(session.analysis)
        return {c.embeddings: session.analysis.embedding_preview(), c.files: [str(p) for p in paths]}

    def open_downloads(self, session: Session | None) -> dict:
        return {self.c.downloads_open: True, **self.downloads(session)}

    def upload(self, path: str | None, *view_options) -> dict:
        """Read an uploaded file into the textbox (so what gets analysed is visible) and analyse it."""
        c = self.c
        if not path:
            return gr.skip()
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
        """Empty the box and every view (a task of one's own stays: Remove drops it)."""
        c = self.c
        return {c.text: "", c.status: "", c.session: None, c.table: None, c.chooser: gr.update(choices=[], value=None),
                c.compare: gr.update(choices=[], value=None), c.pair: "", c.query: "", c.hits: None,
                **{label: None for label in c.task_labels.values()}, c.scope_note: "",
                **{box: "" for box in c.explanations.values()},
                **{table: None for table in c.neighbours.values()},
                c.neighbours_note: "Nearest reference sentences", c.heatmap: None, c.map_plot: None, c.map_note: "",
                c.embeddings: None, c.files: None}

    def details(self, session: Session | None, i: int | None, explain: bool = True) -> dict:
        """Each task's top labels, the scope evidence, the nearest labelled sentences per task of
        sentence i, and i side by side with its most similar other sentence."""
        c = self.c
        if session is None or i is None:
            return gr.skip()
        analysis = session.analysis
        neighbours = self.service.neighbours(analysis, i)
        note = (f"Nearest labelled sentences to **#{i + 1}**" if neighbours else
                "Nearest reference sentences: " + escaped(self.service.reference_status))
        extra = {c.task_labels[EXTRA]: gr.update(visible=False), c.explanations[EXTRA]: gr.update(visible=False),
                 c.neighbours[EXTRA]: gr.update(visible=False)}
        panels, tables = {}, {}
        for index, (task, names) in enumerate(analysis.labels.items()):
            slot, rejected = self.slot(task), analysis.predictions[i][task].rejected
            panels[c.task_labels[slot]] = gr.update(value=label_value(analysis, task, i), visible=True,
                                                    label=texts.task_title(index, task, len(names), rejected))
            tables[c.neighbours[slot]] = gr.update(value=neighbours_table(neighbours.get(task, [])), visible=True)
        partner = analysis.most_similar(i)
        explanations = {box: gr.update(value=value, visible=True) for box, value in
                        (self.explain_selected(session, i) if explain else
                         {c.explanations[self.slot(task)]: texts.EXPLAIN_PENDING for task in analysis.labels}).items()}
        evidence = analysis.scope_evidence(i)
        scope_note = "\n\n".join(texts.scope_note(e) for e in evidence) if evidence else texts.NO_SCOPE
        return {**extra, **panels, c.scope_note: scope_note, **tables, **explanations, c.neighbours_note: note,
                c.compare: partner, c.pair: "" if partner is None else texts.pair_note(analysis, i, partner)}

    def explanation(self, analysis: Analysis, text: str, task: str, label: str | None = None) -> str:
        """HTML: the sentence coloured by each word's push towards `task`'s label (None: the predicted one)."""
        found = self.service.explanation(text, task, label, extra=analysis.task)
        return (texts.explanation_title(task, readable_label(found.label), found.probability) +
                word_highlights(text, found.spans, found.scores))

    def explain_selected(self, session: Session | None, i: int | None) -> dict:
        """Why sentence i got each label; after Analyse, its own last step, so it never delays the views."""
        if session is None or i is None:
            return gr.skip()
        analysis = session.analysis
        return {self.c.explanations[self.slot(task)]: self.explanation(analysis, analysis.texts[i], task)
                for task in analysis.labels}

    def explain_label(self, session: Session | None, i: int | None, evt: gr.SelectData) -> dict:
        """A label clicked in a top list: explain that label instead of the predicted one."""
        if session is None or i is None:
            return gr.skip()
        analysis = session.analysis
        for task in analysis.labels:
            slot = self.slot(task)
            if evt.target is self.c.task_labels[slot]:
                ids = {readable_label(label): label for label in analysis.labels[task]}
                label = ids.get(str(evt.value))
                if label is not None:
                    return {self.c.explanations[slot]: self.explanation(analysis, analysis.texts[i], task, label)}
        return gr.skip()

    def pair(self, session: Session | None, i: int | None, j: int | None) -> dict:
        if session is None or i is None or j is None:
            return gr.skip()
        return {self.c.pair: texts.pair_note(session.analysis, i, j)}

    def search(self, session: Session | None, query: str, colour_by: str, dims: int, use_reference: bool) -> dict:
        """The sentences most like the query, listed and ringed on the map."""
        c = self.c
        if session is None:
            gr.Warning("Analyse some sentences first; the search looks among them and the reference sentences.")
            return gr.skip()
        try:
            session.hits = self.service.search_hits(session.analysis, query)
        except InputError as err:
            gr.Warning(escaped(str(err)))
            return gr.skip()
        return {c.hits: [h.row() for h in session.hits], **self.map_outputs(session, colour_by, dims, use_reference)}

    def select_row(self, session: Session | None, evt: gr.SelectData) -> dict:
        if session is None:
            return gr.skip()
        i = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        return {self.c.chooser: i, **self.details(session, i)}

    def map_outputs(self, session: Session, colour_by: str, dims: int, use_reference: bool) -> dict:
        view = self.service.map_of(session, int(dims), use_reference)
        if colour_by not in session.analysis.labels:
            colour_by = next(iter(session.analysis.labels))
        return {self.c.map_plot: map_figure(session.analysis, view, colour_by, int(dims), hits=session.hits),
                self.c.map_note: f"**Map method:** {escaped(view.note)}"}

    def redraw_map(self, session: Session | None, colour_by: str, dims: int, use_reference: bool) -> dict:
        return gr.skip() if session is None else self.map_outputs(session, colour_by, dims, use_reference)

    def redraw_heatmap(self, session: Session | None, order: str) -> dict:
        return gr.skip() if session is None else {self.c.heatmap: heatmap_figure(session.analysis, order)}

    # ---- a task of one's own ----------------------------------------------------------------------

    def task_built(self, task: ExampleTask, token: str | None) -> dict:
        """The report, the task as a file, and the session's token for it (the old task is dropped)."""
        c = self.c
        return {c.task_report: texts.task_report(task.report),
                c.task_file: gr.update(value=str(self.service.task_file(task)), visible=True),
                c.task_token: self.service.keep_task(task, replacing=token)}

    def build_task(self, examples: str, name: str, token: str | None) -> dict:
        """A task from the box's examples; with the box empty, the session's task built again under the name
        given (an uploaded file's examples stay out of the box: a CSV's labels and texts may hold colons)."""
        kept = self.service.task_for(token)
        try:
            if kept is not None and not (examples or "").strip():
                task = self.service.task_again(kept, name)
            else:
                task = self.service.task_from_lines(examples, name)
        except InputError as err:
            gr.Warning(escaped(str(err)))
            return {self.c.task_report: escaped(f"⚠️ {err}")}
        return self.task_built(task, token)

    def improve_task(self, name: str, token: str | None,
                     progress: gr.Progress = gr.Progress()) -> dict:  # noqa: B008 - Gradio injects the bar through this default
        """The session's task built again on the same examples, with its own top layers trained on them first
        (about a minute): the progress bar counts the steps and estimates the time left from their pace."""
        kept = self.service.task_for(token)
        if kept is None:
            gr.Warning(texts.IMPROVE_NEEDS_TASK)
            return {self.c.task_report: texts.IMPROVE_NEEDS_TASK}
        progress(0, desc=texts.improving(0, 0, None))
        started = time.perf_counter()

        def step(done: int, total: int) -> None:
            left = (time.perf_counter() - started) / done * (total - done)
            progress(done / total, desc=texts.improving(done, total, left))

        return self.task_built(self.service.task_again(kept, name, improve=True, progress=step), token)

    def upload_task(self, path: str | None, name: str, token: str | None) -> dict:
        """A task from an uploaded .csv; the box is emptied, so that Build builds this task again, not the
        examples written there before."""
        c = self.c
        if not path:
            return gr.skip()
        try:
            task = self.service.task_from_file(path, name, get_upload_folder())
        except InputError as err:
            gr.Warning(escaped(str(err)))
            return {c.task_report: escaped(f"⚠️ {err}"), c.task_upload: None}
        built = self.task_built(task, token)
        return {**built, c.task_report: built[c.task_report] + "\n" + texts.TASK_FROM_FILE, c.task_examples: "",
                c.task_upload: None}

    def remove_task(self, token: str | None) -> dict:
        self.service.forget_task(token)
        return {self.c.task_report: texts.TASK_REMOVED, self.c.task_file: gr.update(value=None, visible=False),
                self.c.task_token: None}

    def reanalyse(self, text: str, *options) -> dict:
        """After a task is built or removed: the sentences on screen again, with it or without it."""
        return self.analyse(text, *options) if (text or "").strip() else gr.skip()

    # ---- wiring ----------------------------------------------------------------------------------

    def wire(self) -> None:
        c = self.c
        details = [*c.task_labels.values(), c.scope_note, *c.explanations.values(), *c.neighbours.values(),
                   c.neighbours_note, c.compare, c.pair]
        views = [c.status, c.session, c.table, c.chooser, c.compare, c.colour_by, c.heatmap, c.map_plot, c.map_note,
                 c.hits]
        everything = [*views, *details, c.embeddings, c.files]
        view_options = [c.order, c.colour_by, c.dims, c.use_reference]
        analyse_inputs = [c.text, *view_options, c.task_token]
        private = {"api_visibility": "private"}  # UI plumbing; the public API is registered in register_api
        heavy = {**private, **model_queue(self.service)}
        light = {**private, "concurrency_limit": None}  # reads the stored analysis only: never queue behind the model

        def then_details(event, name: str) -> None:
            """The steps after the views: details and files, then the word explanations."""
            event.then(self.after_analyse, [c.session, c.downloads_open], [*details, c.embeddings, c.files],
                       api_name=f"after_{name}",
                       **light).then(self.explain_selected, [c.session, c.chooser], list(c.explanations.values()),
                                     api_name=f"explain_{name}", **heavy)

        then_details(c.run.click(self.analyse, analyse_inputs, views, api_name="analyse_button", **heavy), "button")
        then_details(c.examples.load_input_event.then(self.analyse, analyse_inputs, views, api_name="analyse_example",
                                                      **heavy), "example")
        then_details(c.upload.upload(self.upload, [c.upload, *analyse_inputs[1:]], [c.text, c.upload, *views],
                                     api_name="upload_and_analyse", **heavy), "upload")
        task_outputs = [c.task_report, c.task_file, c.task_token]
        for trigger, name in ((c.build.click(self.build_task, [c.task_examples, c.task_name, c.task_token],
                                             task_outputs, api_name="build_task", **heavy), "build"),
                              (c.task_upload.upload(self.upload_task, [c.task_upload, c.task_name, c.task_token],
                                                    [*task_outputs, c.task_examples, c.task_upload],
                                                    api_name="upload_task", **heavy),
                               "task_upload"),
                              (c.improve.click(self.improve_task, [c.task_name, c.task_token], task_outputs,
                                               api_name="improve_task", **heavy), "improve"),
                              (c.remove.click(self.remove_task, [c.task_token], task_outputs, api_name="remove_task",
                                              **light), "remove")):
            then_details(trigger.then(self.reanalyse, analyse_inputs, views, api_name=f"reanalyse_{name}", **heavy), name)
        c.clear.click(self.clear, None, [c.text, c.query, *everything], api_name="clear", **light)
        c.downloads.expand(self.open_downloads, [c.session], [c.downloads_open, c.embeddings, c.files], **light)
        c.downloads.collapse(lambda: False, None, [c.downloads_open], **light)
        c.compare.input(self.pair, [c.session, c.chooser, c.compare], [c.pair], **light)
        for label in c.task_labels.values():
            label.select(self.explain_label, [c.session, c.chooser], list(c.explanations.values()), **heavy)
        search_inputs = [c.session, c.query, c.colour_by, c.dims, c.use_reference]
        for trigger in (c.search.click, c.query.submit):
            trigger(self.search, search_inputs, [c.hits, c.map_plot, c.map_note], api_name="search_button", **heavy)
        c.table.select(self.select_row, [c.session], [c.chooser, *details], **light)
        c.chooser.input(self.details, [c.session, c.chooser], details, **light)
        c.order.change(self.redraw_heatmap, [c.session, c.order], [c.heatmap], **light)
        # colour_by: .input, since Analyse itself sets its choices (and draws the map already)
        c.colour_by.input(self.redraw_map, [c.session, c.colour_by, c.dims, c.use_reference], [c.map_plot, c.map_note],
                          **heavy)
        for control in (c.dims, c.use_reference):
            control.change(self.redraw_map, [c.session, c.colour_by, c.dims, c.use_reference],
                           [c.map_plot, c.map_note], **heavy)
        # Public as /load_file so API clients can send files too; in the page the upload handler above does the work.
        api_text, api_message = gr.Textbox(visible=False), gr.Markdown(visible=False)
        c.upload.upload(self.api_load_file, [c.upload], [api_text, api_message], api_name="load_file")
