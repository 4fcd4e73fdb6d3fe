"""Every static text of the app in one place: examples, limits, the About tab."""
from __future__ import annotations

import html
import re

from mtl_core.model.config import MAX_TOKENS
from mtl_core.serving.inputs import read_examples
from mtl_core.serving.records import readable_label
from mtl_core.serving.service import HEATMAP_MAX, Analysis
from mtl_core.settings import MAX_SENTENCES, ROOT
from mtl_core.tasks.definitions import label_noun

MAX_FILE_SIZE = "2mb"  # passed to launch(); ~2,000 sentences of 1 kB each
FIGURES = ROOT / "docs" / "figures"  # experiment plots; app.py passes this folder to launch(allowed_paths=...)

TITLE = ("## Multi-task sentence transformer\nIntent (Banking77) and sentiment from one shared all-MiniLM-L6-v2 "
         "pass, with similarity and map views of the embeddings.")
UNTRAINED_BANNER = ("UNTRAINED heads ({heads}): no trained weights for them were found, so their predictions below "
                    "are random. Embeddings, similarity and maps are real.")
# The input's examples: what each shows (its chip; the sentences themselves would be cut to one long line) -> its sentences
CHIP_CHARS = 60  # Gradio cuts an example's chip after this many characters
EXAMPLES = {
    "Charged twice, a new card, a bad rate, praise":
    "I was charged twice for the same coffee, fix this now.\nHow long does a new card take to arrive?\n"
    "The exchange rate on my cash withdrawal was a rip-off.\nI love the new app, my transfer arrived in seconds!",
    "A late card, a cash fee, a PIN, a stolen card":
    "My card still hasn't arrived after two weeks.\nWhy was I charged a fee for taking out cash?\n"
    "How do I change my PIN?\nI think someone stole my card, please block it.",
    "Thanks and complaints":
    "Thanks, the refund finally showed up!\nThe exchange rate you gave me was terrible.\n"
    "Can I add my card to Apple Pay?\nTransfer failed again, this is so frustrating.\n"
    "Great support, they fixed my blocked PIN in minutes.",
    "Weather, pizza (out of scope), a declined card":
    "What's the weather going to be like in Paris tomorrow?\nI love pizza.\nMy card was declined at the shop.",
}
LIMITS = (f"One sentence per line, at most **{MAX_SENTENCES:,} sentences** per request. Uploads: .txt "
          f"(one sentence per line) or .csv (a `text` column), at most {MAX_FILE_SIZE.upper()}. Sentences "
          f"longer than {MAX_TOKENS} word pieces are truncated (you are told which).")
EXPLAIN_GUIDE = ("**Why this label?** <span style='background: rgba(27,158,119,0.6)'>&nbsp;Green&nbsp;</span> words "
                 "support the label, <span style='background: rgba(217,95,2,0.6)'>&nbsp;orange&nbsp;</span> words "
                 "count against it; the stronger the colour, the more the label's probability changes when the word "
                 "is left out (method: occlusion, one word at a time). Click another label in a top list to explain "
                 "that one. A reading aid, not proof: words act together, and a word's effect alone is not its "
                 "effect in company.")
EXPLAIN_PENDING = "<div style='color: #666'>Finding the words that drove this label…</div>"
PREVIEW_NOTE = ("The first {dims} of 384 dimensions and the vector's L2 norm (1: unit length). The files hold "
                "everything: results.csv has the predict command's columns.")
ABOUT = f"""
### What this is
One shared sentence encoder (all-MiniLM-L6-v2, mean-pooled, unit-length 384-dimensional embeddings)
feeds two task heads in a single pass: **Task A**, the customer-support intent (77 Banking77 intents),
and **Task B**, the sentiment (negative / neutral / positive).

### Reading the views
- **Predictions**: each head's most likely label and its probability; select a row for the top-5
  intents, the three sentiment probabilities and the nearest labelled reference sentences (cosine).
- **Out of scope**: a sentence unlike every Banking77 request (its 10 nearest training sentences have a
  mean cosine below a threshold fitted on dev) gets "— none (closest: …)" instead of an intent, with
  the evidence when you select it, and its own grey colour on the map. "Out of scope" means none of the
  77 Banking77 intents, not "not about banking": banking questions outside those intents (credit
  scores, interest rates, mortgages) may be flagged too. The sentiment head answers for every sentence.
- **Similarity heatmap**: cosine similarity of every pair, on a fixed colour range from -1 to 1;
  "cluster" orders rows by average-linkage clustering so groups show as blocks. Up to {HEATMAP_MAX}
  sentences are drawn (the `/similarity` API returns the full matrix).
- **Map**: UMAP (cosine) of the embeddings, or PCA when there are too few sentences for UMAP; the
  method used is written on the figure. The reference map places your sentences with `transform` on a
  UMAP fitted once on labelled example sentences, so even a few sentences land among meaningful
  neighbours.

Training, evaluation and the measured results are described in the project's README and docs/.
"""


WRITE_UP = ROOT / "docs" / "experiments.md"


def in_app_links(markdown: str) -> str:
    """Links that work inside the app: the write-up's sections become anchors of the About tab (rendered
    with header links), its figures are served from FIGURES; other repository links become plain text."""
    # Gradio's header links give a heading the GitHub anchor with an "h-" in front
    markdown = re.sub(r"\]\((?:docs/)?experiments\.md#([^)]+)\)", r"](#h-\1)", markdown)
    markdown = re.sub(r"\]\((?:docs/)?experiments\.md\)", "](#h-step-3-answered-with-experiments)", markdown)
    markdown = re.sub(r"\]\((?:docs/)?figures/([^)]+)\)", lambda m: f"](/gradio_api/file={FIGURES / m.group(1)})",
                      markdown)
    return re.sub(r"\[([^\]]+)\]\((?!https?:|#|/gradio_api/)[^)]*\)", r"\1", markdown)


STEP3_HEADING = "## Step 3: training decisions"


def experiments_markdown() -> str:
    """The README's Step 3 (the measured answers to the training questions), word for word, for the About tab."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    _, found, rest = readme.partition(f"\n{STEP3_HEADING}\n")
    body = rest.split("\n## ", 1)[0].strip() if found else "(see the full write-up below)"
    return (f"#{STEP3_HEADING}\n" + in_app_links(body) +
            "\n\nThe full write-up, with every table and the command behind it, is below.")


def write_up_markdown() -> str:
    """docs/experiments.md with links that work in the app."""
    return in_app_links(WRITE_UP.read_text(encoding="utf-8"))


def explanation_title(task: str, label: str, probability: float) -> str:
    task, label = html.escape(task, quote=False), html.escape(label, quote=False)
    return f"<div style='font-size: 0.85em; color: #555'>{task}: why “{label}” ({probability:.0%})</div>"


TOP_LABELS = 5  # a label panel lists this many; records.TOP_K labels reach it


def task_title(index: int, task: str, num_labels: int, rejected: bool = False) -> str:
    """The title of task number `index`'s label panel: 'Task A: top-5 intents', 'Task B: sentiment'; for an
    out-of-scope sentence it says the labels below are only the closest."""
    what = f"top-{TOP_LABELS} {task}s" if num_labels > TOP_LABELS else task
    title = f"Task {chr(ord('A') + index)}: {what}"
    return f"{title} (none applies; the closest below)" if rejected else title


def none_heading(task: str, num_labels: int) -> str:
    """The label panel's heading for an out-of-scope sentence: 'None of the 77'."""
    return f"None of the {num_labels} {label_noun(task)}s"


def summary(count: int, truncated: list[int], max_tokens: int) -> str:
    """The status line after Analyse: how many sentences, and which were cut at the token limit."""
    note = f"Analysed {count:,} sentence{'s' if count != 1 else ''}."
    if truncated:
        rows = ", ".join(str(i + 1) for i in truncated[:10]) + (", …" if len(truncated) > 10 else "")
        what = "1 sentence was" if len(truncated) == 1 else f"{len(truncated):,} sentences were"
        note += (f" {what} longer than {max_tokens} word pieces and cut there (row{'s' if len(truncated) > 1 else ''} "
                 f"{rows}): only the first {max_tokens} count.")
    return note


def scope_note(evidence) -> str:
    """Markdown: one task's scope decision for the selected sentence (analysis.ScopeEvidence) and why."""
    verdict = f"**{evidence.task}: out of scope** (none of its labels)" if evidence.rejected else f"**{evidence.task}: in scope**"
    relation = "<" if evidence.rejected else "≥"
    return (f"{verdict}: scope score {evidence.score:.3f} {relation} threshold {evidence.threshold:.3f}. Nearest known "
            f"example: “{html.escape(evidence.nearest_text, quote=False)}” "
            f"({html.escape(readable_label(evidence.nearest_label), quote=False)}, "
            f"cosine {evidence.nearest_cosine:.2f}).")


NO_SCOPE = "Out-of-scope detection: not in this checkpoint (every sentence gets its closest label)."


def pair_note(analysis: Analysis, i: int, j: int) -> str:
    """Markdown: sentences i and j side by side (numbered as in the table) with their cosine and predictions."""
    cosine = float(analysis.embeddings[i] @ analysis.embeddings[j])
    cells = [f"**#{n + 1}** {html.escape(analysis.texts[n], quote=False)}<br>"
             f"<small>{html.escape(analysis.predictions[n].summary(), quote=False)}</small>" for n in (i, j)]
    return f"**Cosine similarity {cosine:.3f}**\n\n| sentence A | sentence B |\n|---|---|\n| {cells[0]} | {cells[1]} |"


def table_headers(labels: dict[str, list[str]]) -> list[str]:
    headers = ["#", "sentence"]
    for task in labels:
        headers += [task, f"{task} confidence"]
    return headers


NEIGHBOUR_HEADERS = ["cosine", "label", "reference sentence"]
SEARCH_HEADERS = ["cosine", "where", "labels", "sentence"]


def preview_headers(dims: int) -> list[str]:
    return ["#", "sentence", "norm"] + [f"e{j}" for j in range(dims)]


# ---- your labels ---------------------------------------------------------------------------------------

TASK_GUIDE = ("**Your labels.** Define a task of your own by examples: one `label: example` line each, at least "
              "2 labels with 2 examples each (5-10 work well), or upload a .csv with `text` and `label` columns. "
              "**Build** fits a head on the embeddings in seconds (no training of the encoder), and from then on "
              "every Analyse shows your task beside intent and sentiment, with “— none” for sentences unlike "
              "all your examples. **Improve** then trains the task's own copy of the encoder's top 2 layers on the "
              "same examples (about a minute for 800 examples; more accurate, each sentence a little slower). "
              "Only you see it; it is kept for this browser session "
              "(the server keeps at most {tasks} visitors' tasks, the least recently used dropped first).")
TASK_PLACEHOLDER = ("billing: I was charged twice this month\nbilling: why is my invoice higher?\n"
                    "delivery: where is my parcel?\n...")
EXAMPLE_TASK_FILE = ROOT / "assets" / "examples" / "support_task.csv"  # also the docs' add_task example


def example_labels() -> list[str]:
    """The input examples' chips: what each shows and how many sentences."""
    return [f"{what} ({len(text.splitlines())} sentences)" for what, text in EXAMPLES.items()]


def example_task() -> str:
    """The shipped example task as `label: example` lines, for the panel's example."""
    texts, labels = read_examples(EXAMPLE_TASK_FILE)
    return "\n".join(f"{label}: {text}" for text, label in zip(texts, labels))


def example_task_label() -> str:
    """The example task's chip: its labels and size, e.g. 'Topics: fees, delivery, … (16 examples)'."""
    texts, labels = read_examples(EXAMPLE_TASK_FILE)
    return f"Topics: {', '.join(dict.fromkeys(labels))} ({len(texts)} examples)"


def task_report(report) -> str:
    """Markdown: a fitted task's report (fewshot.TaskReport): what it learned and where it is unsure."""
    counts = ", ".join(f"{html.escape(label, quote=False)} ({n})" for label, n in report.counts.items())
    methods = ", ".join(f"{m} {100 * a:.0f}%" for m, a in report.candidates.items())
    lines = [f"**Task “{report.name}” is ready**: {len(report.counts)} labels, {sum(report.counts.values()):,} examples, "
             f"built in {report.seconds:.1f} s.",
             f"- Head: **{report.method}**, {report.folds}-fold cross-validated accuracy "
             f"**{100 * report.cv_accuracy:.0f}%** ± {100 * report.cv_spread:.0f} (on examples held out of each fold; "
             f"other methods: {methods}).",
             f"- Out of scope (“— none”) below cosine {report.scope_threshold:.2f} to the nearest label's centre "
             f"(the mean of its examples), which {100 * report.scope_recall:.0f}% of your examples reach, each left "
             "out of its own centre.",
             f"- Examples per label: {counts}."]
    if report.improved:
        lines.insert(1, f"- **Improved**: its own copy of the encoder's top {report.improved['layers']} layers was "
                        f"trained on your examples ({report.improved['steps']} steps, {report.improved['seconds']:.0f} s) "
                        "and the head reads their output; the accuracy below was measured before (on the standard "
                        "10-shot sets improving adds 0.5-0.9 points). Each sentence now costs 2 more layer passes.")
    if report.duplicates_dropped:
        lines.append(f"- {report.duplicates_dropped} repeated example(s) were dropped.")
    if report.confused:
        pairs = "; ".join(f"{html.escape(t, quote=False)} → {html.escape(p, quote=False)} ({n}×)" for t, p, n in report.confused)
        lines.append(f"- Most confused (true → predicted): {pairs}. More or clearer examples there help most.")
    return "\n".join(lines)


IMPROVE_BUTTON = "Improve (about a minute)"
IMPROVE_NEEDS_TASK = "Build a task first: **Improve** trains it further on the same examples."


def improving(done: int, total: int, seconds_left: float | None) -> str:
    """The progress bar's line while a task's own layers train."""
    if seconds_left is None:
        return "Improving: reading the examples through the encoder…"
    return f"Improving: step {done} of {total}, about {seconds_left:.0f} s left"


TASK_REMOVED = "Your task was removed; Analyse shows the shipped tasks only."
TASK_FROM_FILE = ("- Built from the uploaded file. **Build** with the box empty builds it again (under the name "
                  "above); examples written in the box make a new task.")
TASK_EXPIRED = ("⚠️ Your task is no longer kept on the server (many visitors since, or a restart): press **Build** "
                "again (the examples are still in the box), or upload its file again.")
