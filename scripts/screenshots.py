"""The README's screenshots, made on purpose (never by the tests):

    python -m scripts.screenshots [--data-dir DIR] [--out assets]

Starts `python app.py` on 127.0.0.1 (with the data folder's reference map when one is found), drives it
in headless Debian chromium through Playwright, and writes full-page screenshots of 10 analysed sentences,
of the same 10 with a task of one's own (the shipped example task, built in the Your labels panel; an
out-of-scope sentence selected), of 300 sentences and of a search among the 300: OUT/screenshot.png,
OUT/screenshot_task.png, OUT/screenshot_300.png and OUT/screenshot_search.png.
"""
from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

from benchmarks.app_process import AppProcess
from mtl_core.data.loading import read_texts
from mtl_core.serving.reference import SHIPPED_REFERENCE
from mtl_core.settings import ROOT, Settings

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 180_000
TEN = ["My card still hasn't arrived after two weeks.", "Where is the new card you sent me?",
       "I was charged twice for the same coffee.", "Why is there an extra fee on my statement?",
       "I love this app, transfers are instant!", "Best banking app I have used, well done.",
       "The app crashes every time I open it.", "Support never answers, I'm so frustrated.",
       "How do I change my PIN?", "What's the weather going to be like in Paris tomorrow?"]


def many_sentences(data_dir: Path | None, n: int) -> list[str]:
    """n sentences from the intent and sentiment test sets (else the shipped reference sentences)."""
    if data_dir and (data_dir / "intent" / "test.csv").is_file():
        pool = read_texts(data_dir / "intent" / "test.csv") + read_texts(data_dir / "sentiment" / "test.csv")[:2000]
    else:
        pool = read_texts(SHIPPED_REFERENCE)
    return [" ".join(t.split()) for t in random.Random(0).sample(pool, min(n, len(pool)))]


def shoot(page, sentences: list[str], path: Path | None) -> None:
    """Analyse the sentences; a full-page screenshot to `path` once the map is drawn (None: none)."""
    page.locator("#sentences textarea").fill("\n".join(sentences))
    page.locator("#analyse").click()
    page.wait_for_function("([want]) => document.querySelector('#status')?.innerText.includes(want)",
                           arg=[f"Analysed {len(sentences)} sentences"], timeout=TIMEOUT_MS)
    page.locator("#map .js-plotly-plot").wait_for()
    page.wait_for_timeout(1500)  # let plotly finish drawing
    if path is not None:
        page.screenshot(path=str(path), full_page=True)
        print(f"wrote {path}")


def build_task(page, select_row: int, path: Path) -> None:
    """Fill in the example task, Build it, wait for the re-analysis with its column, select a row, shoot."""
    page.locator("#your-labels").get_by_role("button").filter(has_text="Topics:").first.click()
    page.locator("#build-task").click()
    page.wait_for_function("() => document.querySelector('#task-report')?.innerText.includes('is ready')",
                           timeout=TIMEOUT_MS)
    page.wait_for_function("() => document.querySelector('#predictions')?.innerText.includes('yours')",
                           timeout=TIMEOUT_MS)
    page.wait_for_timeout(1500)
    page.locator("#chooser input").click()  # the row may be scrolled out of the table: choose it in the list
    page.get_by_role("option", name=f"{select_row + 1}: {TEN[select_row][:80]}").click()
    page.wait_for_function("([want]) => document.querySelector('#explain-yours')?.innerText.includes(want)",
                           arg=[TEN[select_row].split()[-1]], timeout=TIMEOUT_MS)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(path), full_page=True)
    print(f"wrote {path}")


def search(page, query: str, path: Path) -> None:
    page.locator("#query textarea").fill(query)
    page.locator("#search").click()
    page.wait_for_function("() => document.querySelector('#hits')?.innerText.includes('cosine')")
    page.wait_for_function("() => document.querySelector('#map .js-plotly-plot').data.some(t => t.name === 'search results')",
                           timeout=TIMEOUT_MS)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(path), full_page=True)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.screenshots", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Settings.from_env().training_data_dir)
    parser.add_argument("--out", type=Path, default=ROOT / "assets")
    args = parser.parse_args(argv)
    data_dir = args.data_dir if (args.data_dir / "intent").is_dir() else None
    from playwright.sync_api import sync_playwright

    app_args = ["--data-dir", str(data_dir)] if data_dir else []
    with AppProcess(Path(tempfile.gettempdir()) / "mtl_screenshots_app.log", app_args) as app, sync_playwright() as p:
        app.wait_serving()
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app.url)
        page.wait_for_selector("#analyse")
        shoot(page, TEN, None)  # the app serves once its reference map is built
        page.locator("#predictions").get_by_text(TEN[0]).first.click()  # select a row: why this label?
        page.wait_for_function("() => document.querySelector('#explain-intent span[title]')", timeout=TIMEOUT_MS)
        page.wait_for_timeout(1000)
        page.screenshot(path=str(args.out / "screenshot.png"), full_page=True)
        build_task(page, len(TEN) - 1, args.out / "screenshot_task.png")  # the last of TEN: out of scope
        page.reload()  # a new session: the 300 sentences as a first-time visitor sees them, without the task
        page.wait_for_selector("#analyse")
        shoot(page, many_sentences(data_dir, 300), args.out / "screenshot_300.png")
        search(page, "my card was stolen", args.out / "screenshot_search.png")
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
