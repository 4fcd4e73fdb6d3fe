"""The page: build_demo(service) -> gr.Blocks, made of one small function per panel.

Each panel function creates its components and returns them; `Components` collects them so the event
handlers (ui/events.py) can address every output by name.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from mtl_core.serving.service import PREVIEW_DIMS, Service
from ui.figures import placeholder_figure

from . import texts
from .components import HeadedLabel
from .events import EXTRA, Events, register_api, table_layout

SESSION_TTL_S = 3600  # an idle session's analysis (up to ~3 MB of embeddings) is dropped after this
CACHE_CLEANUP = (1800, 3600)  # every 30 min, delete Gradio's cached uploads/downloads older than 1 h
QUEUE_MAX = 32  # beyond this many waiting requests, new ones are refused at once instead of timing out
# The dropdowns' text ran under their arrow; the user's own task's panels are framed so they read as "yours";
# the predictions table's headers wrap between words only (Gradio breaks inside them: "confiden / ce"); their
# columns (events.table_layout) are wide enough for that from a 1,100 px wide table, so in a narrower box (a
# window under 1,280 px) the table keeps that width and scrolls sideways.
CSS = """
#chooser input, #compare input { padding-right: 2.2em !important; text-overflow: ellipsis; }
#your-labels { border-left: 4px solid #7b3294; }
#predictions th .header { word-break: normal; overflow-wrap: normal; }
#predictions .upload-container { overflow-x: auto; }
#predictions .virtual-table-viewport { min-width: 1100px; }
"""


@dataclass
class Components:
    text: gr.Textbox
    run: gr.Button
    clear: gr.Button
    upload: gr.File
    examples: gr.Examples
    status: gr.Markdown
    session: gr.State
    table: gr.Dataframe
    chooser: gr.Dropdown
    task_labels: dict[str, gr.Label]  # by task name; EXTRA: the session's own task
    scope_note: gr.Markdown
    explanations: dict[str, gr.HTML]
    neighbours: dict[str, gr.Dataframe]
    neighbours_note: gr.Markdown
    order: gr.Radio
    heatmap: gr.Plot
    compare: gr.Dropdown
    pair: gr.Markdown
    query: gr.Textbox
    search: gr.Button
    hits: gr.Dataframe
    colour_by: gr.Radio
    dims: gr.Radio
    use_reference: gr.Checkbox
    map_plot: gr.Plot
    map_note: gr.Markdown
    downloads: gr.Accordion
    downloads_open: gr.State  # whether the accordion is open: its contents are built only then
    embeddings: gr.Dataframe
    files: gr.File
    task_examples: gr.Textbox
    task_name: gr.Textbox
    task_upload: gr.File
    build: gr.Button
    improve: gr.Button
    remove: gr.Button
    task_report: gr.Markdown
    task_file: gr.File
    task_token: gr.State


def input_panel() -> dict:
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Textbox(label="Sentences (one per line)", lines=6, max_lines=14,
                              placeholder="Type or paste sentences, one per line", elem_id="sentences")
            with gr.Row():
                run = gr.Button("Analyse", variant="primary", elem_id="analyse")
                clear = gr.Button("Clear", elem_id="clear")
        with gr.Column(scale=2):
            upload = gr.File(label="…or upload a .txt / .csv", file_types=[".txt", ".csv"], type="filepath",
                             elem_id="upload")
            gr.Markdown(texts.LIMITS)
    examples = gr.Examples([[e] for e in texts.EXAMPLES.values()], inputs=[text], example_labels=texts.example_labels(),
                           label="Examples (click one to analyse it)")
    return {"text": text, "run": run, "clear": clear, "upload": upload, "examples": examples}


def your_labels_panel(max_stored_tasks: int) -> dict:
    with gr.Accordion("Your labels: a task of your own from a few examples", open=True, elem_id="your-labels"):
        gr.Markdown(texts.TASK_GUIDE.format(tasks=max_stored_tasks))
        with gr.Row():
            with gr.Column(scale=3):
                examples = gr.Textbox(label="Examples (label: example, one per line)", lines=5, max_lines=12,
                                      placeholder=texts.TASK_PLACEHOLDER, elem_id="task-examples")
                gr.Examples([[texts.example_task()]], inputs=[examples], example_labels=[texts.example_task_label()],
                            label="An example task (click to fill in)")
            with gr.Column(scale=2):
                name = gr.Textbox(label="Task name (names its columns)", value="yours", max_lines=1, elem_id="task-name")
                upload = gr.File(label="…or upload a .csv (text, label)", file_types=[".csv"], type="filepath",
                                 elem_id="task-upload", height=120)
                with gr.Row():
                    build = gr.Button("Build", variant="primary", elem_id="build-task")
                    improve = gr.Button(texts.IMPROVE_BUTTON, elem_id="improve-task")
                    remove = gr.Button("Remove", elem_id="remove-task")
        report = gr.Markdown(elem_id="task-report")
        task_file = gr.File(label="Your task as a file (upload it again to rebuild it)", interactive=False,
                            visible=False, elem_id="task-file")
    token = gr.State(None, time_to_live=SESSION_TTL_S)
    return {"task_examples": examples, "task_name": name, "task_upload": upload, "build": build, "improve": improve,
            "remove": remove,
            "task_report": report, "task_file": task_file, "task_token": token}


def predictions_panel(labels: dict[str, list[str]]) -> dict:
    status = gr.Markdown(elem_id="status")
    session = gr.State(None, time_to_live=SESSION_TTL_S)
    table = gr.Dataframe(**table_layout(labels), interactive=False, wrap=True, max_height=420,
                         label="Predictions (select a row)", elem_id="predictions")
    return {"status": status, "session": session, "table": table}


def details_panel(labels: dict[str, list[str]]) -> dict:
    with gr.Row():
        with gr.Column(scale=2):
            chooser = gr.Dropdown(choices=[], label="Selected sentence", interactive=True, elem_id="chooser")
            task_labels = {task: HeadedLabel(num_top_classes=texts.TOP_LABELS, label=texts.task_title(i, task, len(names)))
                           for i, (task, names) in enumerate(labels.items())}
            task_labels[EXTRA] = HeadedLabel(num_top_classes=texts.TOP_LABELS, visible=False, elem_id="label-yours")
            scope_note = gr.Markdown(elem_id="scope-note")
            gr.Markdown(texts.EXPLAIN_GUIDE, elem_id="explain-guide")
            explanations = {task: gr.HTML(elem_id=f"explain-{task}") for task in labels}
            explanations[EXTRA] = gr.HTML(visible=False, elem_id="explain-yours")
        with gr.Column(scale=3):
            note = gr.Markdown("Nearest reference sentences", elem_id="neighbours-note")
            neighbours = {task: neighbours_table(f"Nearest {task} examples", f"neighbours-{task}", True) for task in labels}
            neighbours[EXTRA] = neighbours_table("Nearest of your examples", "neighbours-yours", False)
    return {"chooser": chooser, "task_labels": task_labels, "scope_note": scope_note, "explanations": explanations,
            "neighbours": neighbours, "neighbours_note": note}


def neighbours_table(label: str, elem_id: str, visible: bool) -> gr.Dataframe:
    return gr.Dataframe(headers=texts.NEIGHBOUR_HEADERS, datatype=["number", "str", "str"], interactive=False, wrap=True,
                        label=label, column_widths=["12%", "25%", "63%"], visible=visible, elem_id=elem_id)


def views_panel(tasks: list[str]) -> dict:
    with gr.Row():
        with gr.Column():
            order = gr.Radio([("input order", "input"), ("clustered", "cluster")], value="input",
                             label="Heatmap row order")
            heatmap = gr.Plot(placeholder_figure("The cosine similarity of your sentences appears here", 650),
                              label="Cosine similarity", elem_id="heatmap")
            compare = gr.Dropdown(choices=[], label="Compare the selected sentence with", interactive=True,
                                  elem_id="compare")
            pair = gr.Markdown(elem_id="pair")
        with gr.Column():
            with gr.Row():
                colour_by = gr.Radio(tasks, value=tasks[0], label="Colour by")
                dims = gr.Radio([("2-D", 2), ("3-D", 3)], value=2, label="Dimensions")
                use_reference = gr.Checkbox(value=True, label="Place on the reference map")
            map_plot = gr.Plot(placeholder_figure("Your sentences, placed on a map of labelled examples, appear here", 650),
                               label="Map", elem_id="map")
            map_note = gr.Markdown()
    return {"order": order, "heatmap": heatmap, "compare": compare, "pair": pair, "colour_by": colour_by,
            "dims": dims, "use_reference": use_reference, "map_plot": map_plot, "map_note": map_note}


def search_panel() -> dict:
    with gr.Row():
        query = gr.Textbox(label="Search: sentences most like…", placeholder="e.g. my card was stolen",
                           scale=4, elem_id="query")
        search = gr.Button("Search", scale=1, elem_id="search")
    hits = gr.Dataframe(headers=texts.SEARCH_HEADERS, datatype=["number", "str", "str", "str"], interactive=False,
                        wrap=True, label="Most similar sentences (ringed on the map)", column_widths=["8%", "12%", "30%", "50%"],
                        elem_id="hits")
    return {"query": query, "search": search, "hits": hits}


def downloads_panel() -> dict:
    with gr.Accordion("Embeddings and downloads", open=False) as downloads:
        gr.Markdown(texts.PREVIEW_NOTE.format(dims=PREVIEW_DIMS))
        headers = texts.preview_headers(PREVIEW_DIMS)
        embeddings = gr.Dataframe(headers=headers, interactive=False, max_height=300, show_label=False, wrap=True,
                                  column_widths=["4%", "30%"] + [f"{66 / (len(headers) - 2):.1f}%"] * (len(headers) - 2))
        files = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="downloads")
    return {"downloads": downloads, "downloads_open": gr.State(False), "embeddings": embeddings, "files": files}


def about_tab() -> None:
    with gr.Tab("About"):
        gr.Markdown(texts.ABOUT)
        gr.Markdown(texts.experiments_markdown(), elem_id="experiments")
        with gr.Accordion("The full write-up: every table and the command behind it", open=False):
            gr.Markdown(texts.write_up_markdown(), header_links=True, elem_id="write-up")
        figures = sorted(texts.FIGURES.glob("*.png"))
        if figures:
            gr.Gallery([str(f) for f in figures], columns=2, height="auto", object_fit="contain",
                       label="Experiment figures (click one to see it whole)", show_label=True)


def build_demo(service: Service, *, banner: str | None = None) -> gr.Blocks:
    """The app, with its queue configured; call .launch() on the result."""
    labels = service.labels
    with gr.Blocks(title="Multi-task sentence transformer", delete_cache=CACHE_CLEANUP) as demo:
        gr.Markdown(texts.TITLE)
        if banner:
            gr.Markdown(f"> ⚠️ **{banner}**", elem_id="untrained-banner")
        with gr.Tab("Analyse"):
            parts = {**input_panel(), **your_labels_panel(service.max_stored_tasks), **predictions_panel(labels),
                     **details_panel(labels), **views_panel(list(labels)), **search_panel(), **downloads_panel()}
        about_tab()
        components = Components(**parts)
        Events(service, components).wire()
        register_api(service)
    demo.queue(default_concurrency_limit=service.concurrency, max_size=QUEUE_MAX)
    return demo
