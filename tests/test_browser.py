"""One real browser (Debian chromium via Playwright, headless, nothing downloaded) against the running app.

The tests share one page and run in file order, like one user's session.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import pytest

from test_predict_cli import DOCUMENTED_COLUMNS

pytest_plugins = ["app_server"]
pytestmark = [pytest.mark.app, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 60_000
SENTENCES = ["My card still hasn't arrived after two weeks.", "Where is the new card you sent me?",
             "I was charged twice for the same coffee.", "Why is there an extra fee on my statement?",
             "I love this app, transfers are instant!", "Best banking app I have used, well done.",
             "The app crashes every time I open it.", "Support never answers, I'm so frustrated.",
             "How do I change my PIN?", "What's the weather going to be like in Paris tomorrow?"]
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script><b>bold?</b>'


def chromium_or_skip() -> None:
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def page(app_url, reference_ready) -> Iterator:
    chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.dialogs = []  # any alert() would mean user text was executed
        page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(app_url, wait_until="domcontentloaded")
        page.wait_for_selector("#analyse")
        yield page
        browser.close()


def analyse(page, text: str, expect: str) -> None:
    page.locator("#sentences textarea").fill(text)
    page.locator("#analyse").click()
    page.wait_for_function("([sel, want]) => document.querySelector(sel)?.innerText.includes(want)",
                           arg=["#status", expect])


def plot_box(page, elem_id: str) -> dict:
    plot = page.locator(f"#{elem_id} .js-plotly-plot")
    plot.wait_for()
    return plot.bounding_box()


def test_submit_fills_table_and_draws_both_plots(page):
    analyse(page, "\n".join(SENTENCES), f"Analysed {len(SENTENCES)} sentences")
    grid = page.locator("#predictions [role=grid]")
    assert grid.get_attribute("aria-rowcount") == str(len(SENTENCES) + 1)  # header + one row per sentence
    assert page.get_by_text(SENTENCES[0]).count() >= 1
    for elem_id in ("heatmap", "map"):
        box = plot_box(page, elem_id)
        assert box["width"] > 100 and box["height"] > 100, (elem_id, box)
    page.locator("#heatmap .heatmaplayer").first.wait_for()
    # Count the drawn sentences from plotly's own trace data, not from the SVG.
    drawn = page.evaluate("""() => document.querySelector('#map .js-plotly-plot').data
        .filter(t => !t.name.startsWith('reference') && t.name !== 'search results')
        .reduce((n, t) => n + t.text.length, 0)""")
    assert drawn == len(SENTENCES)
    assert "reference map" in page.locator("#map").inner_text()
    for task in ("intent", "sentiment"):  # row 1 is selected: why it got its labels follows without a click
        page.wait_for_function(f"() => document.querySelector('#explain-{task}')?.innerText.includes('My card still')")
    # For looking at after a run; the README's screenshots come from scripts/screenshots.py, never from tests.
    target = ROOT / "tests" / "_artifacts" / "screenshot.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000


def download_folders() -> int:
    """The app's scratch folders for downloads (serving/downloads.Downloads): one per set of files built."""
    root = Path(tempfile.gettempdir()) / "mtl_app_downloads"
    return len(list(root.iterdir())) if root.exists() else 0


def test_downloads_are_built_when_opened_and_follow_each_analyse_while_open(page):
    before = download_folders()
    analyse(page, "\n".join(SENTENCES[2:5]), "Analysed 3 sentences")
    # the explanation step comes after the details-and-downloads step: once it shows row 1, that one is done
    page.wait_for_function("() => document.querySelector('#explain-intent')?.innerText.includes('charged twice')")
    assert download_folders() == before  # closed: nothing built for it
    page.get_by_text("Embeddings and downloads").click()
    for name in ("results.csv", "embeddings.npy", "embeddings.csv"):
        page.locator(f"#downloads [aria-label='{name}']").wait_for()
    href = page.locator("#downloads a[download='results.csv']").get_attribute("href")
    rows = page.request.get(href).text().splitlines()
    assert rows[0].split(",") == DOCUMENTED_COLUMNS + ["intent_closest", "intent_in_scope", "intent_scope_score"] \
        and len(rows) == 4
    analyse(page, "\n".join(SENTENCES), f"Analysed {len(SENTENCES)} sentences")  # open: the files follow
    page.wait_for_function("""(old) => {
        const a = document.querySelector("#downloads a[download='results.csv']");
        return a && a.getAttribute('href') !== old; }""", arg=href)
    href = page.locator("#downloads a[download='results.csv']").get_attribute("href")
    assert len(page.request.get(href).text().splitlines()) == len(SENTENCES) + 1


def test_3d_map(page):
    page.get_by_label("3-D").check()
    page.locator("#map .gl-container canvas, #map .scene").first.wait_for()
    page.get_by_label("2-D").check()


def test_an_out_of_scope_sentence_is_marked_in_the_table_and_its_details(page):
    # the weather question (and the app reviews: praise is no Banking77 request) match none of the 77 intents
    assert page.locator("#predictions").get_by_text("— none (closest:").count() >= 1
    assert page.locator("#predictions").get_by_text("Change PIN", exact=True).count() == 1  # in scope: named
    page.locator("#predictions").get_by_text(SENTENCES[9]).last.click()
    page.wait_for_function("() => document.querySelector('#scope-note')?.innerText.includes('intent: out of scope')")
    assert "Nearest known example" in page.locator("#scope-note").inner_text()
    # the top-5 panel is headed by the decision, not by the closest intent
    assert page.get_by_text("None of the 77 intents", exact=True).count() >= 1


def test_selecting_a_row_shows_its_details_and_why(page):
    page.locator("#predictions").get_by_text(SENTENCES[2]).click()
    page.wait_for_function("() => document.querySelector('#chooser input')?.value.startsWith('3:')")
    assert "Nearest labelled sentences to #3" in page.locator("#neighbours-note").inner_text()
    for task in ("intent", "sentiment"):  # the sentence twice, its words coloured by their push
        page.wait_for_function(f"() => document.querySelector('#explain-{task}')?.innerText.includes('charged twice')")
        assert page.locator(f"#explain-{task} span[title]").count() == len(SENTENCES[2].split()) + 1  # + the "."


def legend_entries(page) -> list[str]:
    return page.evaluate("""() => document.querySelector('#map .js-plotly-plot').data
        .filter(t => t.showlegend !== false).map(t => t.name)""")


def test_search_lists_and_rings_the_most_similar_sentences(page):
    page.locator("#query textarea, #query input").first.fill("my card was stolen")
    page.locator("#search").click()
    page.wait_for_function("() => document.querySelector('#hits')?.innerText.includes('reference')")
    page.wait_for_function("""() => document.querySelector('#map .js-plotly-plot').data
        .some(t => t.name === 'search results')""")
    assert "search results" in legend_entries(page)


def test_the_map_legend_summarises_300_sentences(page):
    sentences = [f"{s} (variant {i})" for i in range(30) for s in SENTENCES]
    analyse(page, "\n".join(sentences), "Analysed 300 sentences")
    page.wait_for_function("""() => document.querySelector('#map .js-plotly-plot').data
        .filter(t => !t.name.startsWith('reference')).reduce((n, t) => n + (t.text || []).length, 0) == 300""")
    assert len(legend_entries(page)) <= 15
    assert page.locator("#heatmap").get_by_text("first 300").count() == 0  # all 300 drawn, no subset note


def test_clear_empties_the_box_the_table_and_the_plots(page):
    page.locator("#clear").click()
    page.wait_for_function("() => document.querySelector('#sentences textarea').value === ''")
    page.wait_for_function("() => !document.querySelector('#map .js-plotly-plot')")
    assert page.locator("#heatmap .js-plotly-plot").count() == 0
    assert page.locator("#predictions").get_by_text(SENTENCES[0]).count() == 0
    assert page.locator("#status").inner_text().strip() == ""


def test_html_in_a_sentence_is_shown_as_text(page):
    analyse(page, f"{XSS}\nplain sentence", "Analysed 2 sentences")
    assert page.locator("#predictions").get_by_text(XSS).count() >= 1  # shown literally
    assert page.evaluate("window.__xss") is None and page.dialogs == []
    assert page.locator("#predictions img, #predictions script, #predictions b").count() == 0


def test_upload_fills_the_textbox_and_analyses_and_bad_files_get_a_message(page, tmp_path):
    good = tmp_path / "reviews.csv"
    good.write_text("text,stars\nGreat app,5\nToo many fees,1\n", encoding="utf-8")
    page.locator("#upload input[type=file]").set_input_files(str(good))
    page.wait_for_function("() => document.querySelector('#sentences textarea').value === 'Great app\\nToo many fees'")
    page.wait_for_function("() => document.querySelector('#status')?.innerText.includes('Analysed 2 sentences')")
    bad = tmp_path / "notes.txt"
    bad.write_bytes(b"\x00\x01binary")
    page.locator("#upload input[type=file]").set_input_files(str(bad))
    page.wait_for_function("() => document.querySelector('#status')?.innerText.includes('binary')")


def test_empty_input_gets_a_message_not_an_error(page):
    analyse(page, "   ", "no sentences")
    assert page.locator("#predictions [role=grid]").count() == 1  # earlier results stay


def test_about_tab_links_lead_to_the_write_up_and_figures_are_served(page):
    page.get_by_role("tab", name="About").click()
    page.get_by_text("The full write-up: every table and the command behind it").click()
    page.wait_for_selector("#write-up h2")
    for anchor in ("h-1-what-to-freeze", "h-2-multi-task-vs-two-separate-models"):
        assert page.locator(f"#experiments a[href='#{anchor}']").count() >= 1
        assert page.locator(f"[id='{anchor}']").count() >= 1, anchor  # the link's target exists
    image = page.locator("#write-up img").first
    assert page.request.get(urljoin(page.url, image.get_attribute("src"))).status == 200
    page.get_by_role("tab", name="Analyse").click()


# ---- two visitors' own tasks stay apart ------------------------------------------------------------------

TASK_TIMEOUT_MS = 90_000  # build (cross-validating four heads on a busy 2-core machine) and re-analyse


def task_lines(prefix: str) -> str:
    return "\n".join([f"{prefix}_card: where is my card?", f"{prefix}_card: my card has not arrived",
                      f"{prefix}_card: when will the card come", f"{prefix}_praise: great app",
                      f"{prefix}_praise: I love this bank", f"{prefix}_praise: best service ever"])


def visitor(browser, app_url: str):
    """A fresh browser context (its own cookies and storage: a separate Gradio session) with the app open."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    visitor_page = context.new_page()
    visitor_page.set_default_timeout(TASK_TIMEOUT_MS)
    visitor_page.goto(app_url, wait_until="domcontentloaded")
    visitor_page.wait_for_selector("#analyse")
    return context, visitor_page


def build_task(visitor_page, name: str, lines: str) -> None:
    visitor_page.locator("#task-examples textarea").fill(lines)
    visitor_page.locator("#task-name textarea, #task-name input").first.fill(name)
    visitor_page.locator("#build-task").click()
    visitor_page.wait_for_function("([sel, want]) => document.querySelector(sel)?.innerText.includes(want)",
                                   arg=["#task-report", f"Task “{name}” is ready"])


def page_text(visitor_page) -> str:
    """Everything on the page, shown or not: the visible text and the HTML (hidden panels, attributes)."""
    return visitor_page.locator("body").inner_text() + visitor_page.content()


def test_each_visitor_sees_only_their_own_task(page, app_url):
    browser = page.context.browser
    two = "My card still hasn't arrived after two weeks.\nI love this app, transfers are instant!"
    three = two + "\nHow do I change my PIN?"
    a_context, b_context = None, None
    try:
        a_context, a = visitor(browser, app_url)
        build_task(a, "alpha_only", task_lines("alpha"))
        analyse(a, two, "Analysed 2 sentences")
        a.wait_for_function("() => document.querySelector('#predictions')?.innerText.includes('alpha_only')")
        assert a.locator("#predictions").get_by_text("Alpha card", exact=True).count() >= 1  # its label, readable

        b_context, b = visitor(browser, app_url)
        analyse(b, two, "Analysed 2 sentences")
        b.wait_for_function("() => document.querySelector('#explain-intent')?.innerText.includes('My card still')")
        assert "intent" in b.locator("#predictions").inner_text()
        assert "alpha_only" not in page_text(b) and "alpha_card" not in page_text(b)

        build_task(b, "beta_only", task_lines("beta"))  # B's sentences are analysed again, now with its task
        b.wait_for_function("() => document.querySelector('#predictions')?.innerText.includes('beta_only')")
        assert "alpha_only" not in page_text(b)

        analyse(a, three, "Analysed 3 sentences")
        a.wait_for_function("() => document.querySelector('#predictions')?.innerText.includes('How do I change')")
        assert "alpha_only" in a.locator("#predictions").inner_text()
        assert "beta_only" not in page_text(a) and "beta_card" not in page_text(a)
    finally:
        for context in (a_context, b_context):
            if context is not None:
                context.close()


def test_a_task_downloads_as_a_file_that_rebuilds_it_and_remove_drops_it(page, app_url, tmp_path):
    context = None
    try:
        context, visitor_page = visitor(page.context.browser, app_url)
        build_task(visitor_page, "gamma", task_lines("gamma"))
        report = visitor_page.locator("#task-report").inner_text()
        href = visitor_page.locator("#task-file a[download]").first.get_attribute("href")
        saved = tmp_path / "examples_gamma.csv"
        saved.write_bytes(visitor_page.request.get(urljoin(visitor_page.url, href)).body())
        assert saved.read_text(encoding="utf-8").splitlines()[:2] == ["text,label", "where is my card?,gamma_card"]
        visitor_page.locator("#remove-task").click()
        visitor_page.wait_for_function("() => document.querySelector('#task-report')?.innerText.includes('removed')")
        analyse(visitor_page, "Where is my card?", "Analysed 1 sentence")
        assert "gamma" not in visitor_page.locator("#predictions").inner_text()
        visitor_page.locator("#task-upload input[type=file]").set_input_files(str(saved))  # the file, uploaded again
        visitor_page.wait_for_function("() => document.querySelector('#task-report')?.innerText.includes('is ready')")
        same = visitor_page.locator("#task-report").inner_text()
        def summary(text: str) -> str:  # the report from its heading to its build time (which may differ), without
            return text[text.index("Task “gamma”"):].split("built in")[0]  # a "processing" overlay's text before it

        assert summary(same) == summary(report)  # the same task
        visitor_page.wait_for_function("() => document.querySelector('#predictions')?.innerText.includes('Gamma card')")
        assert visitor_page.locator("#task-examples textarea").input_value() == ""  # the box held another task's examples
        visitor_page.locator("#task-name textarea, #task-name input").first.fill("gamma_again")
        visitor_page.locator("#build-task").click()  # the box is empty: Build builds the uploaded examples again
        visitor_page.wait_for_function("([sel, want]) => document.querySelector(sel)?.innerText.includes(want)",
                                       arg=["#task-report", "“gamma_again” is ready"])
        assert summary(visitor_page.locator("#task-report").inner_text().replace("gamma_again", "gamma")) == summary(report)
        visitor_page.wait_for_function("() => document.querySelector('#predictions')?.innerText.includes('gamma_again')")
        bad = tmp_path / "labels.csv"
        bad.write_text("sentence,tag\nhello,a\n", encoding="utf-8")
        visitor_page.locator("#task-upload input[type=file]").set_input_files(str(bad))
        visitor_page.wait_for_function("() => document.querySelector('#task-report')?.innerText.includes('no text')")
    finally:
        if context is not None:
            context.close()


def test_improve_needs_a_task_then_trains_it_and_the_table_keeps_it(page, app_url):
    context = None
    try:
        context, visitor_page = visitor(page.context.browser, app_url)
        visitor_page.locator("#improve-task").click()  # no task yet: a message, nothing breaks
        visitor_page.wait_for_function("() => document.querySelector('#task-report')?.innerText.includes('Build a task first')")
        build_task(visitor_page, "delta", task_lines("delta"))
        analyse(visitor_page, "My card still hasn't arrived after two weeks.", "Analysed 1 sentence")
        visitor_page.locator("#improve-task").click()
        visitor_page.wait_for_function("() => document.querySelector('#task-report')?.innerText.includes('Improved')")
        report = visitor_page.locator("#task-report").inner_text()
        assert "Task “delta” is ready" in report and "top 2 layers" in report
        visitor_page.wait_for_function("() => document.querySelector('#predictions')?.innerText.includes('Delta card')")
    finally:
        if context is not None:
            context.close()


# Header words of the predictions table that are cut across two lines or overflow their cell
BROKEN_HEADER_WORDS = """() => { const bad = [];
    for (const header of document.querySelectorAll('#predictions th .header')) {
        if (header.scrollWidth > header.clientWidth + 1) bad.push(header.innerText);
        const node = header.firstChild;
        let at = 0;
        for (const word of node.textContent.split(' ')) {
            const range = document.createRange();
            range.setStart(node, at);
            range.setEnd(node, at + word.length);
            if (range.getClientRects().length > 1) bad.push(word);
            at += word.length + 1;
        } }
    return bad; }"""
# The table's box: its scrollable width, its visible width, and where its last column ends within it
TABLE_REACH = """() => { const box = document.querySelector('#predictions .upload-container');
    const headers = document.querySelectorAll('#predictions th');
    const end = headers[headers.length - 1].getBoundingClientRect().right - box.getBoundingClientRect().left + box.scrollLeft;
    return {end: end, scroll: box.scrollWidth, visible: box.clientWidth}; }"""


def test_with_a_third_task_the_table_keeps_whole_header_words_and_scrolls_instead_of_clipping(page, app_url):
    context = None
    try:
        context, visitor_page = visitor(page.context.browser, app_url)
        build_task(visitor_page, "delta", task_lines("delta"))
        analyse(visitor_page, "\n".join(SENTENCES), "Analysed 10 sentences")
        visitor_page.wait_for_function("() => document.querySelector('#predictions')?.innerText.includes('delta')")
        for width in (1400, 1000):  # a 1,216 px wide box; a 704 px one
            visitor_page.set_viewport_size({"width": width, "height": 1000})
            visitor_page.wait_for_timeout(500)
            assert visitor_page.evaluate(BROKEN_HEADER_WORDS) == [], width
            reach = visitor_page.evaluate(TABLE_REACH)
            assert reach["end"] <= reach["scroll"] + 1, (width, reach)  # the last column can be scrolled to
            assert (reach["scroll"] > reach["visible"]) == (width < 1280), (width, reach)  # scrolls only when narrow
    finally:
        if context is not None:
            context.close()


def test_each_example_chip_names_what_it_shows(page):
    from ui import texts

    chips = [chip.inner_text() for chip in page.locator("button.gallery-item").all()]
    assert chips == [*texts.example_labels(), texts.example_task_label()]  # whole, not cut to one long line
