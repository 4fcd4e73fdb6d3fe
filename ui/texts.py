"""Every static text of the app in one place: examples, limits, the About tab."""
from __future__ import annotations

import re

from mtl_core.analysis import HEATMAP_MAX
from mtl_core.config import MAX_TOKENS
from mtl_core.settings import MAX_SENTENCES, ROOT

MAX_FILE_SIZE = "2mb"  # passed to launch(); ~2,000 sentences of 1 kB each
FIGURES = ROOT / "docs" / "figures"  # experiment plots; app.py passes this folder to launch(allowed_paths=...)

TITLE = ("## Multi-task sentence transformer\nIntent (Banking77) and sentiment from one shared all-MiniLM-L6-v2 "
         "pass, with similarity and map views of the embeddings.")
UNTRAINED_BANNER = ("UNTRAINED heads ({heads}): no trained weights for them were found, so their predictions below "
                    "are random. Embeddings, similarity and maps are real.")
TASK_TITLES = {"intent": "Task A: top-5 intents", "sentiment": "Task B: sentiment"}
EXAMPLES = [
    "I love the new update, transfers are instant!\nThe app keeps crashing when I open my statement.\n"
    "It's okay, nothing special.",
    "My card still hasn't arrived after two weeks.\nWhy was I charged a fee for taking out cash?\n"
    "How do I change my PIN?\nI think someone stole my card, please block it.",
    "Thanks, the refund finally showed up!\nThe exchange rate you gave me was terrible.\n"
    "Can I add my card to Apple Pay?\nTransfer failed again, this is so frustrating.\n"
    "Great support, they fixed my blocked PIN in minutes.",
    "What's the weather going to be like in Paris tomorrow?\nI love pizza.\nMy card was declined at the shop.",
]
LIMITS = (f"One sentence per line, at most **{MAX_SENTENCES:,} sentences** per request. Uploads: .txt "
          f"(one sentence per line) or .csv (a `text` column), at most {MAX_FILE_SIZE.upper()}. Sentences "
          f"longer than {MAX_TOKENS} word pieces are truncated (you are told which).")
EXPLAIN_GUIDE = ("**Why this label?** Each word of the selected sentence is coloured by how much leaving it out "
                 "lowers (<span style='background: rgba(27,158,119,0.6)'>&nbsp;green&nbsp;</span>: it pushes towards "
                 "the label) or raises (<span style='background: rgba(217,95,2,0.6)'>&nbsp;orange&nbsp;</span>: it "
                 "pushes away) the label's probability; stronger colour, larger effect (method: occlusion, one word "
                 "left out at a time). Click another label in a top list to explain that one. A reading aid, not "
                 "proof: words act together, and a word's effect alone is not its effect in company.")
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
    return f"<div style='font-size: 0.85em; color: #555'>{task}: why “{label}” ({probability:.0%})</div>"


def task_title(task: str, rejected: bool = False) -> str:
    """The title of a task's label panel; for an out-of-scope sentence it says that none applies."""
    if rejected:
        return f"{TASK_TITLES.get(task, task).split(':')[0]}: NONE of the {task}s (out of scope); the closest below"
    return TASK_TITLES.get(task, f"{task}: top labels")
