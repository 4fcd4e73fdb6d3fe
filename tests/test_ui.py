"""The UI without a server: the About tab (the README's Step 3 and the full write-up, with links that work inside
the app) and the event handlers on the tiny model."""
import re
from pathlib import Path

import pytest

from ui import texts

# an example task for the tiny model: (texts, labels); its random embeddings separate nothing, this tests plumbing
EXAMPLES = (["can wait", "no rush at all", "whenever you can", "urgent please help", "right now!", "blocked today"],
            ["low", "low", "low", "high", "high", "high"])


def test_about_tab_shows_the_readme_step_3_word_for_word_with_in_app_links():
    text = texts.experiments_markdown()
    readme = (texts.ROOT / "README.md").read_text(encoding="utf-8")
    step3 = readme.split(texts.STEP3_HEADING + "\n", 1)[1].split("\n## ", 1)[0]
    parts = re.findall(r"(?m)^### (.+)$", step3)
    assert len(parts) == 4 and all(f"### {part}" in text for part in parts)  # the four parts, as in the README
    assert texts.in_app_links(step3.strip()) in text
    assert "](docs/" not in text and "(#h-1-what-to-freeze)" in text


def test_the_write_up_serves_its_figures_and_keeps_no_dead_links():
    text = texts.write_up_markdown()
    assert "](figures/" not in text and f"](/gradio_api/file={texts.FIGURES / 'q1_freeze.png'})" in text
    assert "](../README.md" not in text


def test_every_example_chip_shows_whole():
    chips = [*texts.example_labels(), texts.example_task_label()]
    assert len(chips) == len(texts.EXAMPLES) + 1 and all(len(chip) <= texts.CHIP_CHARS for chip in chips), chips


@pytest.mark.parametrize("tasks", [1, 2, 3, 4])
def test_the_table_fills_its_width_up_to_three_tasks_and_scrolls_beyond(tasks):
    from ui.events import SENTENCE_MIN_SHARE, TASK_SHARES, table_layout

    layout = table_layout({f"task{i}": ["a", "b"] for i in range(tasks)})
    widths = [float(w.rstrip("%")) for w in layout["column_widths"]]
    assert len(widths) == len(layout["headers"]) == 2 + 2 * tasks
    assert widths[2:] == list(TASK_SHARES) * tasks  # a task's columns never narrow
    if tasks <= 3:
        assert sum(widths) == 100 and widths[1] >= SENTENCE_MIN_SHARE
    else:  # wider than its box: it scrolls sideways
        assert sum(widths) > 100 and widths[1] == SENTENCE_MIN_SHARE


# ---- the event handlers, on the tiny model and without a server --------------------------------------------

@pytest.fixture(scope="module")
def events(tiny_checkpoint):
    """The app's handlers (ui/events.Events) as build_demo wires them, on the tiny checkpoint."""
    from mtl_core.serving.predictor import Predictor
    from mtl_core.serving.service import Service
    from ui import build_demo

    demo = build_demo(Service(Predictor.load(tiny_checkpoint)))
    [build] = [fn.fn for fn in demo.fns.values() if fn.api_name == "build_task"]
    return build.__self__


def uploaded_examples(name: str) -> str:
    """An examples .csv where Gradio keeps uploads (the only folder the handlers read files from)."""
    from gradio.utils import get_upload_folder

    from mtl_core.serving.inputs import write_examples

    folder = Path(get_upload_folder()) / "test_ui"
    folder.mkdir(parents=True, exist_ok=True)
    write_examples(*EXAMPLES, folder / name)
    return str(folder / name)


def test_build_after_an_upload_builds_the_uploaded_examples_again(events):
    c, service = events.c, events.service
    uploaded = events.upload_task(uploaded_examples("urgency.csv"), "urgency", None)
    assert "Task “urgency” is ready" in uploaded[c.task_report] and texts.TASK_FROM_FILE in uploaded[c.task_report]
    assert uploaded[c.task_examples] == ""  # Build now means this file's task, not what the box said before
    token = uploaded[c.task_token]
    first = service.task_for(token)
    rebuilt = events.build_task("", "renamed", token)  # the box is empty: the examples came from the file
    assert "Task “renamed” is ready" in rebuilt[c.task_report] and "no examples" not in rebuilt[c.task_report]
    again = service.task_for(rebuilt[c.task_token])
    assert again.examples() == first.examples() == EXAMPLES and again.name == "renamed"
    assert service.task_for(token) is None  # the session's old task was replaced, not kept beside it


def test_build_prefers_the_box_and_says_so_when_there_is_nothing_to_build(events):
    c, service = events.c, events.service
    token = events.upload_task(uploaded_examples("urgency.csv"), "urgency", None)[c.task_token]
    typed = events.build_task("soon: call me back\nsoon: ring me\nlater: no rush\nlater: whenever", "typed", token)
    assert service.task_for(typed[c.task_token]).examples()[1] == ["soon", "soon", "later", "later"]
    empty = events.build_task("", "yours", None)
    assert "no examples" in empty[c.task_report] and c.task_token not in empty  # the report says why; nothing kept


def test_a_search_hit_is_ringed_where_its_sentence_lies_and_the_files_hold_the_run(events):
    import numpy as np

    from mtl_core.serving.service import Session

    service = events.service
    analysis = service.run("my card is lost\ngreat app\nwhere is my money")
    hits = service.search_hits(analysis, "my card is lost", k=2)
    assert (hits[0].source, hits[0].index) == ("yours", 0) and hits[0].cosine == pytest.approx(1.0, abs=1e-5)
    view = service.map_of(Session(analysis), 2, use_reference=False)
    np.testing.assert_array_equal(view.hit_coords(hits[:1]), view.projection.coords[:1])
    paths = service.write_downloads(analysis)
    assert [p.name for p in paths] == ["results.csv", "embeddings.npy", "embeddings.csv"]
    np.testing.assert_array_equal(np.load(paths[1]), analysis.embeddings)
    assert paths[2].read_text(encoding="utf-8").splitlines()[1].startswith("my card is lost,")
