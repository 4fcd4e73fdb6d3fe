"""The About tab: the README's Discussion and the full write-up, with links that work inside the app."""
from ui import texts


def test_about_tab_shows_the_readme_discussion_with_in_app_links():
    text = texts.experiments_markdown()
    assert "What to freeze?" in text and "One multi-task model or two?" in text
    assert "](docs/" not in text and "[q1 rows](#h-1-what-to-freeze)" in text


def test_the_write_up_serves_its_figures_and_keeps_no_dead_links():
    text = texts.write_up_markdown()
    assert "](figures/" not in text and f"](/gradio_api/file={texts.FIGURES / 'q1_freeze.png'})" in text
    assert "](../README.md" not in text
