"""Evaluate a checkpoint:

    python -m mtl_core evaluate [--checkpoint DIR] [--data-dir DIR] [--split test|dev] [--out DIR] [--json]
"""
from __future__ import annotations

import argparse
import json

from mtl_core.commands.common import add_checkpoint_argument, add_data_dir_argument, command_parser, run_command
from mtl_core.settings import Settings
from mtl_core.tasks.definitions import SCOPED_TASK
from mtl_core.training.evaluation import evaluate_checkpoint
from mtl_core.training.scope_evaluation import markdown_table


def report_lines(report: dict) -> list[str]:
    lines = [f"{task:10s} n={m['n']:6d} acc={m['accuracy']:.4f} macro_f1={m['macro_f1']:.4f} "
             f"macro_recall={m['macro_recall']:.4f} ece={m['ece']:.4f} (uncalibrated {m['ece_uncalibrated']:.4f})"
             for task, m in report["tasks"].items()]
    if "scope" in report:
        found, task = report["scope"], SCOPED_TASK.name
        lines += ["", f"Out of scope ({report['split']}: {found['n_in_scope']:,} {task} sentences vs CLINC150 "
                      f"{found['n_oos']:,} `oos` + {found['n_domains']:,} non-banking domain queries; each threshold "
                      f"accepts {found['dev_recall']:.1%} of the {task} dev sentences):", markdown_table(found)]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("evaluate", "Evaluate a checkpoint on the official test sets (or dev).")
    add_checkpoint_argument(parser)
    add_data_dir_argument(parser)
    parser.add_argument("--split", default="test", choices=["test", "dev"])
    parser.add_argument("--out", help="folder for metrics.json, reports and confusion matrices (default: eval_<split> in "
                                      "the checkpoint; for the shipped one runs/evaluate/checkpoint/eval_<split>, "
                                      "never over its committed results)")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.add_argument("--cache-dir", help="reuse the training feature cache (e.g. runs/cache) for the frozen part")
    parser.add_argument("--scope", action=argparse.BooleanOptionalAction, default=True,
                        help="also compare the out-of-scope scorers when the data folder has oos/ (default: yes)")
    args = parser.parse_args(argv)

    def work() -> None:
        settings = Settings.from_env()
        report = evaluate_checkpoint(args.checkpoint or settings.checkpoint, args.data_dir or settings.training_data_dir,
                                     args.split, args.cache_dir, settings.precision, args.scope, settings.backbone,
                                     args.out)
        print(json.dumps(report, indent=2) if args.json else "\n".join(report_lines(report)))

    return run_command(work)

