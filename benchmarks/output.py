"""What every benchmark does with its results: the JSON file (the figures the docs quote) and a Markdown table."""
from __future__ import annotations

import json
from pathlib import Path


def write_results(out: Path, results: dict, table: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(table)
    print(f"\nwrote {out}")
