"""What every benchmark does with its results: the JSON file (the figures the docs quote) and a Markdown table."""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from mtl_core.settings import ROOT, Settings

SECTION = re.compile(r"<!-- section: (?P<name>[\w-]+) -->\n.*?<!-- end of section: (?P=name) -->\n", re.S)


def benchmark_parser(module: str, doc: str) -> argparse.ArgumentParser:
    """A benchmark's parser with the options every benchmark has (--data-dir, --out, --quick); read it with
    parse_benchmark_args."""
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{module}", description=doc.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="data folder (default: $MTL_DATA_DIR, else data/ in the checkout)")
    parser.add_argument("--out", type=Path, help=f"results JSON (default: benchmarks/{module}_results.json; "
                                                 f"with --quick: runs/{module}_quick.json)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs; its numbers mean nothing")
    return parser


def parse_benchmark_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    module = parser.prog.rsplit(".", 1)[-1]
    args.data_dir = args.data_dir or Settings.from_env().training_data_dir
    args.out = args.out or ROOT / (f"runs/{module}_quick.json" if args.quick else f"benchmarks/{module}_results.json")
    return args


def write_results(out: Path, results: dict, table: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(table)
    print(f"\nwrote {out}")


def write_section(path: Path, name: str, text: str) -> None:
    """Put `text` into `path` as the section `name` (replacing its previous version, else appended): how a
    second benchmark adds its table to RESULTS.md, which benchmarks/run.py writes (keep_sections)."""
    block = f"<!-- section: {name} -->\n{text.rstrip()}\n<!-- end of section: {name} -->\n"
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    found = [m for m in SECTION.finditer(old) if m.group("name") == name]
    new = old.replace(found[0].group(0), block) if found else old.rstrip("\n") + "\n\n" + block
    path.write_text(new, encoding="utf-8")


def keep_sections(path: Path, text: str) -> str:
    """`text` followed by the sections other benchmarks wrote into the file at `path` (write_section)."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    kept = "".join(m.group(0) for m in SECTION.finditer(old))
    return text.rstrip("\n") + "\n\n" + kept if kept else text


def generated_pattern(name: str, kind: str = "generated") -> re.Pattern:
    """The block `<!-- KIND:NAME -->\\n...<!-- /KIND -->` of a Markdown file: its text between the markers is
    `body` (experiments/report.py writes docs/experiments.md's `<!-- table:NAME -->` blocks with it)."""
    return re.compile(rf"(?P<start><!-- {kind}:{re.escape(name)} -->\n)(?P<body>.*?)(?P<end><!-- /{kind} -->)", re.S)


def generated_block(text: str, name: str, kind: str = "generated") -> str:
    """The body of the block `name` in `text`, without its final newline; ValueError when it has none."""
    found = generated_pattern(name, kind).search(text)
    if not found:
        raise ValueError(f"no <!-- {kind}:{name} --> ... <!-- /{kind} --> block")
    return found["body"].removesuffix("\n")


def replace_generated(text: str, name: str, body: str, kind: str = "generated") -> str:
    """`text` with the block `name`'s body replaced by `body`; ValueError when it has no such block."""
    generated_block(text, name, kind)  # raises if absent
    return generated_pattern(name, kind).sub(lambda m: m["start"] + body.rstrip("\n") + "\n" + m["end"], text, count=1)


def write_generated(path: Path, name: str, body: str, kind: str = "generated") -> None:
    """Rewrite the block `name` of the file at `path` with `body` (the file must already have its markers)."""
    text = path.read_text(encoding="utf-8")
    path.write_text(replace_generated(text, name, body, kind), encoding="utf-8")
