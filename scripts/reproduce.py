"""Reproduce the committed numbers in one command, in two tiers.

    python -m scripts.reproduce quick   # minutes: data checksums, the shipped checkpoint's test metrics, Step 1, the docs
    python -m scripts.reproduce full    # hours: quick, then retrain the shipped model and run every Step 3 sweep

Every step is a command printed before it starts, with its estimated time on a 2-core CPU machine (from
the committed results' own wall times where they hold one). Everything is written under
runs/reproduce/ (or --out), never over a committed file; a finished step leaves a mark in
runs/reproduce/done/ and is skipped next time, so an interrupted run resumes (and a sweep resumes
inside itself: its finished runs are kept). The end is a table of reproduced vs committed numbers; the exit
status is 1 if any differs beyond its tolerance: 1e-6 for what is deterministic (the shipped
checkpoint's metrics, Step 1), one seed spread (or 1 point) for retraining.
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mtl_core.settings import ROOT, repo_relative

COMMITTED_EVAL = ROOT / "assets" / "checkpoint" / "eval_test" / "metrics.json"
SWEEPS = ("q1_freeze", "q1_sequential", "q2_separate", "q3_scarce", "q3_shared", "q4_accuracy", "q5_learning_curve")
EVALUATE_MINUTES = 3.5  # the test sets and the out-of-scope sets in fp32: 3.3 min measured on a quiet 2-core machine
RETRAIN_TOLERANCE = 0.01  # 1 point: CPU kernels differ between machines, and training amplifies the differences


@dataclass(frozen=True)
class Row:
    """One reproduced number beside the committed one."""
    what: str
    reproduced: float | None
    committed: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.reproduced is not None and abs(self.reproduced - self.committed) <= self.tolerance


@dataclass(frozen=True)
class Step:
    title: str
    argv: tuple[str, ...]  # after `python -m`
    minutes: float  # estimated, on the 2-core machine
    output: Path | None = None  # the file `compare` reads
    compare: Callable[[Path], list[Row]] = lambda output: []

    def marker(self, out: Path) -> Path:
        """Written when the step has finished (a sweep's results file exists from its first run on)."""
        return out / "done" / (re.sub(r"\W+", "-", self.title.lower()).strip("-") + ".txt")


def numbers(data: object, prefix: str = "") -> dict[str, float]:
    """Every number of a JSON document by its dot path."""
    if isinstance(data, dict):
        return {k: v for key, value in data.items() for k, v in numbers(value, f"{prefix}{key}.").items()}
    if isinstance(data, list):
        return {k: v for i, value in enumerate(data) for k, v in numbers(value, f"{prefix}{i}.").items()}
    is_number = isinstance(data, int | float) and not isinstance(data, bool)
    return {prefix.rstrip("."): float(data)} if is_number else {}


def same_numbers(name: str, reproduced: Path, committed: Path, tolerance: float = 1e-6) -> list[Row]:
    """One row per number of the committed JSON file."""
    ours = numbers(json.loads(reproduced.read_text()))
    return [Row(f"{name} {key}", ours.get(key), value, tolerance)
            for key, value in numbers(json.loads(committed.read_text())).items()]


def shipped_metrics(output: Path) -> list[Row]:
    return same_numbers("shipped checkpoint", output, COMMITTED_EVAL)


def step1(output: Path) -> list[Row]:
    return same_numbers("Step 1", output, ROOT / "benchmarks" / "step1_results.json", tolerance=5e-5)


def retrained(output: Path) -> list[Row]:
    ours, committed = json.loads(output.read_text()), json.loads(COMMITTED_EVAL.read_text())
    return [Row(f"retrained shipped model {task} {metric}", ours["tasks"][task][metric], committed["tasks"][task][metric],
                RETRAIN_TOLERANCE)
            for task, metric in (("intent", "accuracy"), ("sentiment", "macro_recall"))]


def sweep_rows(name: str) -> Callable[[Path], list[Row]]:
    def compare(output: Path) -> list[Row]:
        ours = json.loads(output.read_text())
        committed = json.loads((ROOT / "experiments" / "results" / f"{name}.json").read_text())
        rows = []
        for run, result in committed.items():
            for key in ("intent.accuracy", "sentiment.macro_recall"):
                if key in result["summary"]:
                    found = ours.get(run, {}).get("summary", {}).get(key, {}).get("mean")
                    spread = max(result["summary"][key]["std"], RETRAIN_TOLERANCE)
                    rows.append(Row(f"{name} {run} {key}", found, result["summary"][key]["mean"], spread))
        return rows
    return compare


def training_minutes(path: Path) -> float:
    """The committed wall time of every training run in a sweep's results (seeds included)."""
    runs = json.loads(path.read_text()).values()
    return sum(s["wall_seconds"]["total"] for run in runs for s in run["seeds"]) / 60


def quick_steps(out: Path) -> list[Step]:
    return [
        Step("data: every file's SHA-256", ("mtl_core", "data", "check"), 0.1),
        Step("the shipped checkpoint on the test sets (fp32)",
             ("mtl_core", "evaluate", "--out", repo_relative(out / "eval_test")),
             EVALUATE_MINUTES, out / "eval_test" / "metrics.json", shipped_metrics),
        Step("Step 1: sample embeddings and the pooling comparison",
             ("benchmarks.step1_check", "--out", repo_relative(out / "step1_results.json")), 1,
             out / "step1_results.json", step1),
        Step("docs: every quoted number against its results file", ("scripts.check_docs",), 0.2),
    ]


def full_steps(out: Path) -> list[Step]:
    shipped_minutes = json.loads((ROOT / "assets" / "checkpoint" / "metrics.json").read_text())["wall_seconds"]["total"] / 60
    steps = [
        Step("retrain the shipped model", ("mtl_core", "train", "--config", "assets/checkpoint/train_config.json",
                                           "--output", repo_relative(out / "shipped")), shipped_minutes),
        Step("evaluate the retrained model", ("mtl_core", "evaluate", "--checkpoint", repo_relative(out / "shipped")),
             EVALUATE_MINUTES, out / "shipped" / "eval_test" / "metrics.json", retrained),
    ]
    for name in SWEEPS:
        steps.append(Step(f"sweep {name}", ("experiments.sweep", f"experiments/{name}.json", "--results-dir",
                                            repo_relative(out / "results")),
                          training_minutes(ROOT / "experiments" / "results" / f"{name}.json"),
                          out / "results" / f"{name}.json", sweep_rows(name)))
    return steps


def run_step(step: Step, number: int, total: int, out: Path) -> None:
    command = "python -m " + shlex.join(step.argv)
    marker = step.marker(out)
    if marker.exists():
        print(f"[{number}/{total}] {step.title}: done before ({repo_relative(marker)} exists)", flush=True)
        return
    print(f"[{number}/{total}] {step.title}, ~{step.minutes:.0f} min: {command}", flush=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", *step.argv], cwd=ROOT, check=True)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{command}: finished\n")
    print(f"    took {(time.perf_counter() - started) / 60:.1f} min", flush=True)


def table(rows: list[Row], shown: int = 12) -> str:
    lines = ["| number | reproduced | committed | difference | within |", "|---|---|---|---|---|"]
    for r in rows[:shown]:
        found = "missing" if r.reproduced is None else f"{r.reproduced:.6g}"
        diff = "" if r.reproduced is None else f"{r.reproduced - r.committed:+.2g}"
        lines.append(f"| {r.what} | {found} | {r.committed:.6g} | {diff} | {'yes' if r.ok else '**no**'} (±{r.tolerance:g}) |")
    if len(rows) > shown:
        lines.append(f"| … {len(rows) - shown} more, all within their tolerance | | | | |" if all(r.ok for r in rows[shown:])
                     else f"| … {len(rows) - shown} more, {sum(not r.ok for r in rows[shown:])} of them outside | | | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("tier", choices=["quick", "full"])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "reproduce",
                        help="folder for everything it writes (default: runs/reproduce)")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    steps = quick_steps(out) + (full_steps(out) if args.tier == "full" else [])
    print(f"{len(steps)} steps, ~{sum(s.minutes for s in steps):.0f} min in all on a 2-core CPU; writing to "
          f"{repo_relative(out)}",
          flush=True)
    rows: list[Row] = []
    for number, step in enumerate(steps, 1):
        try:
            run_step(step, number, len(steps), out)
        except subprocess.CalledProcessError as error:
            print(f"error: step {number} failed (exit {error.returncode}); fix it and run the same command again")
            return 1
        if step.output:
            rows += step.compare(step.output)
    print("\n" + table(sorted(rows, key=lambda r: r.ok)))
    bad = [r for r in rows if not r.ok]
    print(f"\n{len(rows) - len(bad)} of {len(rows)} numbers reproduced within their tolerance")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
