"""The About tab: the README's Step 3 and the full write-up, with links that work inside the app."""
import re

from ui import texts


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
