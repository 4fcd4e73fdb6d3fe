"""The page: build_demo(service) -> gr.Blocks, made of one small function per panel.

Each panel function creates its components and returns them; `Components` collects them so the event
handlers (ui/events.py) can address every output by name.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from mtl_core.analysis import NEIGHBOUR_HEADERS, PREVIEW_DIMS, PREVIEW_HEADERS, SEARCH_HEADERS
from mtl_core.records import table_headers
from mtl_core.viz import placeholder_figure
from mtl_core.service import Service

from . import texts
from .events import Events, register_api

SESSION_TTL_S = 3600  # an idle session's analysis (up to ~3 MB of embeddings) is dropped after this
CACHE_CLEANUP = (1800, 3600)  # every 30 min, delete Gradio's cached uploads/downloads older than 1 h
QUEUE_MAX = 32  # beyond this many waiting requests, new ones are refused at once instead of timing out


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
    task_labels: dict[str, gr.Label]
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
    embeddings: gr.Dataframe
    files: gr.File


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
    examples = gr.Examples([[e] for e in texts.EXAMPLES], inputs=[text], label="Examples (click one to analyse it)")
    return {"text": text, "run": run, "clear": clear, "upload": upload, "examples": examples}


def predictions_panel(labels: dict[str, list[str]]) -> dict:
    status = gr.Markdown(elem_id="status")
    session = gr.State(None, time_to_live=SESSION_TTL_S)
    headers = table_headers(labels)
    share = 50 / len(labels)  # the sentence takes 45% of the width, each task's label and confidence the rest
    table = gr.Dataframe(headers=headers, datatype=["number", "str"] + ["str", "number"] * len(labels),
                         interactive=False, wrap=True, max_height=420, label="Predictions (select a row)",
                         column_widths=["5%", "45%"] + [f"{0.6 * share:.0f}%", f"{0.4 * share:.0f}%"] * len(labels),
                         elem_id="predictions")
    return {"status": status, "session": session, "table": table}


def details_panel(labels: dict[str, list[str]]) -> dict:
    with gr.Row():
        with gr.Column(scale=2):
            chooser = gr.Dropdown(choices=[], label="Selected sentence", interactive=True, elem_id="chooser")
            task_labels = {task: gr.Label(num_top_classes=min(5, len(names)), label=texts.task_title(task))
                           for task, names in labels.items()}
            scope_note = gr.Markdown(elem_id="scope-note")
            gr.Markdown(texts.EXPLAIN_GUIDE, elem_id="explain-guide")
            explanations = {task: gr.HTML(elem_id=f"explain-{task}") for task in labels}
        with gr.Column(scale=3):
            note = gr.Markdown("Nearest reference sentences", elem_id="neighbours-note")
            neighbours = {task: gr.Dataframe(headers=NEIGHBOUR_HEADERS, datatype=["number", "str", "str"],
                                             interactive=False, wrap=True, label=f"Nearest {task} examples",
                                             column_widths=["12%", "25%", "63%"], elem_id=f"neighbours-{task}")
                          for task in ("intent", "sentiment")}
    return {"chooser": chooser, "task_labels": task_labels, "scope_note": scope_note, "explanations": explanations,
            "neighbours": neighbours, "neighbours_note": note}


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
    hits = gr.Dataframe(headers=SEARCH_HEADERS, datatype=["number", "str", "str", "str"], interactive=False,
                        wrap=True, label="Most similar sentences (ringed on the map)", column_widths=["8%", "12%", "30%", "50%"],
                        elem_id="hits")
    return {"query": query, "search": search, "hits": hits}


def downloads_panel() -> dict:
    with gr.Accordion("Embeddings and downloads", open=False):
        gr.Markdown(texts.PREVIEW_NOTE.format(dims=PREVIEW_DIMS))
        embeddings = gr.Dataframe(headers=PREVIEW_HEADERS, interactive=False, max_height=300, show_label=False,
                                  wrap=True, column_widths=["4%", "30%"] + [f"{66 / (len(PREVIEW_HEADERS) - 2):.1f}%"]
                                  * (len(PREVIEW_HEADERS) - 2))
        files = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="downloads")
    return {"embeddings": embeddings, "files": files}


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
    labels = service.predictor.labels
    with gr.Blocks(title="Multi-task sentence transformer", delete_cache=CACHE_CLEANUP) as demo:
        gr.Markdown(texts.TITLE)
        if banner:
            gr.Markdown(f"> ⚠️ **{banner}**", elem_id="untrained-banner")
        with gr.Tab("Analyse"):
            parts = {**input_panel(), **predictions_panel(labels), **details_panel(labels),
                     **views_panel(list(labels)), **search_panel(), **downloads_panel()}
        about_tab()
        components = Components(**parts)
        Events(service, components).wire()
        register_api(service)
    demo.queue(default_concurrency_limit=service.settings.concurrency, max_size=QUEUE_MAX)
    return demo
