"""Experiment scripts, run as modules from the repository root (python -m experiments.<name>)."""
from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def save_result(name: str, report: dict) -> None:
    """Write experiments/results/<name>.json (committed) and print it."""
    text = json.dumps(report, indent=2)
    (RESULTS / f"{name}.json").write_text(text + "\n")
    print(text)
