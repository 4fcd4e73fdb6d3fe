"""Check every number the docs quote from a committed results file against that file.

    python -m scripts.check_docs

A number in README.md or docs/*.md that a results file holds carries a marker right after it (an HTML
comment, invisible on GitHub):

    intent accuracy 93.02%<!-- n: assets/checkpoint/eval_test/metrics.json tasks.intent.accuracy *100 -->

`FILE[@COMMIT] KEY [*FACTOR | /DIVISOR]`: the JSON file (at a git commit, for a figure from the past),
the dot path of the value in it (list positions are numbers, names may hold spaces, `*` takes the
mean over every element: `top1.seeds.*.wall_seconds.total`), and an optional scale. The number checked
is the last one before the marker (since the previous marker on the line); it must equal the file's
value at the number's printed rounding (93.02 holds for 0.93016). Tables and blocks the docs generate
from results files (experiments/report.py, benchmarks/step1_check.py) are regenerated in memory and
compared whole. Prints one line per failure and exits 1 if there is any.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from benchmarks.output import replace_generated
from mtl_core.settings import ROOT

MARKER = re.compile(r"<!-- n: (?P<file>[^\s@]+)(?:@(?P<commit>[0-9a-f]{7,40}))? (?P<key>.+?)"
                    r"(?: (?P<op>[*/])(?P<scale>[\d.e+]+))? -->")
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Quote:
    """One marked number of a document."""
    doc: str
    line: int
    printed: str
    file: str
    commit: str | None
    key: str
    scale: float

    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def quotes(doc: str, text: str) -> list[Quote]:
    """Every marked number of a document's text (a marker with no number before it is an error)."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        start = 0
        for m in MARKER.finditer(line):
            before = NUMBER.findall(line[start:m.start()])
            start = m.end()
            scale = float(m["scale"] or 1)
            found.append(Quote(doc, number, before[-1] if before else "", m["file"], m["commit"], m["key"],
                               1 / scale if m["op"] == "/" else scale))
    return found


@cache
def results_file(file: str, commit: str | None) -> object:
    if commit is None:
        return json.loads((ROOT / file).read_text(encoding="utf-8"))
    shown = subprocess.run(["git", "show", f"{commit}:{file}"], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(shown.stdout)


def values_at(data: object, parts: list[str]) -> list[float]:
    if not parts:
        return [float(data)]
    head, rest = parts[0], parts[1:]
    if head == "*":  # every element of a list (or every value of an object)
        return [v for item in (data if isinstance(data, list) else data.values()) for v in values_at(item, rest)]
    if isinstance(data, list):
        return values_at(data[int(head)], rest)
    for n in range(len(parts), 0, -1):  # a name may itself hold dots ("intent.accuracy"): longest first
        if ".".join(parts[:n]) in data:
            return values_at(data[".".join(parts[:n])], parts[n:])
    raise KeyError(head)


def value_at(data: object, key: str) -> float:
    """The value at a dot path; a `*` step means every element there, and the value is then their mean
    (how the docs' tables summarise seeds)."""
    found = values_at(data, key.split("."))
    return sum(found) / len(found)


def decimals(printed: str) -> int:
    return len(printed.split(".")[1]) if "." in printed else 0


def problem(quote: Quote) -> str | None:
    """Why a quoted number does not match its file, or None when it does."""
    if not quote.printed:
        return f"{quote.where()}: a marker with no number before it"
    source = f"{quote.file}{'@' + quote.commit if quote.commit else ''} {quote.key}"
    try:
        value = value_at(results_file(quote.file, quote.commit), quote.key) * quote.scale
    except (OSError, KeyError, IndexError, ValueError, TypeError, subprocess.CalledProcessError) as error:
        return f"{quote.where()}: cannot read {source}: {error!r}"
    printed = float(quote.printed.replace(",", ""))
    places = decimals(quote.printed)
    if abs(printed - value) > 0.5 * 10 ** -places + 1e-9:
        return f"{quote.where()}: the doc says {quote.printed}, {source} holds {value:.{places + 2}f}"
    return None


def step1_block(text: str) -> str:
    from benchmarks import step1_check
    results = json.loads(step1_check.DEFAULT_OUT.read_text(encoding="utf-8"))
    return replace_generated(text, step1_check.BLOCK, step1_check.render_markdown(results))


def generated_blocks() -> list[tuple[Path, Callable[[str], str]]]:
    """Documents with blocks generated from results files, and the function that regenerates them."""
    from experiments import report
    return [(ROOT / "docs" / "experiments.md", report.render), (ROOT / "README.md", step1_block)]


def stale_blocks() -> list[str]:
    problems = []
    for path, render in generated_blocks():
        text = path.read_text(encoding="utf-8")
        if render(text) != text:
            problems.append(f"{path.relative_to(ROOT)}: a generated block differs from its results file "
                            f"(rerun the command named above the block)")
    return problems


def check(texts: dict[str, str] | None = None) -> tuple[list[Quote], list[str]]:
    """All marked numbers of the docs (or of `texts`, doc name -> text) and the problems found."""
    texts = texts or {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in documents()}
    found = [q for doc, text in texts.items() for q in quotes(doc, text)]
    return found, [p for p in map(problem, found) if p]


def main() -> int:
    found, problems = check()
    problems += stale_blocks()
    for line in problems:
        print(line)
    print(f"{len(found)} quoted numbers in {len(documents())} documents checked against their results files; "
          f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
