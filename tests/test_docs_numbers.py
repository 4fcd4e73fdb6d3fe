"""Every number the docs quote from a results file equals that file's value at the printed rounding
(scripts/check_docs.py), and the check fails when either side changes."""
import json

from mtl_core.settings import ROOT
from scripts import check_docs
from scripts.check_docs import Quote


def test_every_quoted_number_matches_its_results_file_and_every_generated_block_is_current():
    found, problems = check_docs.check()
    assert problems == []
    assert check_docs.stale_blocks() == []
    assert len(found) >= 100 and {q.doc for q in found} >= {"README.md", "docs/app.md", "docs/performance.md"}


def test_a_changed_number_in_the_readme_fails_the_check():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first = check_docs.quotes("README.md", text)[0]
    lines = text.splitlines()
    line = lines[first.line - 1]
    marker = line.index("<!-- n:")
    start = line.rindex(first.printed, 0, marker)
    changed = f"{float(first.printed.replace(',', '')) * 2 + 1:.{check_docs.decimals(first.printed)}f}"
    lines[first.line - 1] = line[:start] + changed + line[start + len(first.printed):]
    _, problems = check_docs.check({"README.md": "\n".join(lines)})
    assert problems == [f"README.md:{first.line}: the doc says {changed}, " + problems[0].split(", ", 1)[1]]


def test_rounding_scale_means_commits_and_names_with_dots():
    file, key = "experiments/results/q1_freeze.json", "top1.seeds.*.embedding_drift.pairwise_similarity_spearman"
    seeds = json.loads((ROOT / file).read_text())["top1"]["seeds"]
    mean = sum(s["embedding_drift"]["pairwise_similarity_spearman"] for s in seeds) / len(seeds)
    ok = f"{mean:.2f}<!-- n: {file} {key} --> and {mean * 100:.1f}%<!-- n: {file} {key} *100 -->"
    assert check_docs.check({"x.md": ok})[1] == []
    wrong = f"{mean + 0.01:.2f}<!-- n: {file} {key} -->"
    assert check_docs.check({"x.md": wrong})[1][0].startswith("x.md:1: the doc says")
    dotted = "93.1%<!-- n: experiments/results/q1_freeze.json top2.summary.intent.accuracy.mean *100 -->"
    assert check_docs.check({"x.md": dotted})[1] == []
    past = "2,920 MB<!-- n: docs/results/space_install.json@c6c7bce download_mb -->"
    assert check_docs.check({"x.md": past})[1] == []


def test_a_marker_without_a_number_or_with_a_wrong_key_is_a_problem():
    quotes = check_docs.quotes("x.md", "no number<!-- n: benchmarks/results.json quiet --> then "
                                      "7<!-- n: benchmarks/results.json no.such.key -->")
    assert quotes[0] == Quote("x.md", 1, "", "benchmarks/results.json", None, "quiet", 1.0)
    problems = [check_docs.problem(q) for q in quotes]
    assert "no number before it" in problems[0] and "cannot read benchmarks/results.json no.such.key" in problems[1]
