"""The About tab's experiments text comes from the README's Discussion, readable without the repository."""
from ui import texts


def test_about_tab_shows_the_readme_discussion_without_dead_links():
    text = texts.experiments_markdown()
    assert "What to freeze?" in text and "One multi-task model or two?" in text
    assert "](docs/" not in text and "q1 rows" in text
