"""Experiment scripts, run as modules from the repository root (python -m experiments.<name>)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def add_results_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results-dir", type=Path, default=RESULTS,
                        help="folder for the results JSON (default: experiments/results, the committed files; "
                             "python -m scripts.reproduce passes a folder under runs/)")


def save_result(name: str, report: dict, folder: Path = RESULTS) -> None:
    """Write <folder>/<name>.json (by default experiments/results/, committed) and print it."""
    text = json.dumps(report, indent=2)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(text + "\n")
    print(text)
