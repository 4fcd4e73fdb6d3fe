"""Add a task from labelled examples to a checkpoint:
python -m mtl_core add_task --examples FILE.csv --name NAME --output DIR [--checkpoint BASE]

DIR gets everything BASE serves plus a head fitted on the examples (tasks/fewshot.py; no backbone training), its
out-of-scope detector and its examples (examples_NAME.csv, to refit or edit); `python -m mtl_core predict
--checkpoint DIR` then writes NAME, NAME_score, NAME_closest, NAME_in_scope and NAME_scope_score beside the other columns.
"""
from __future__ import annotations

import json
from pathlib import Path

from mtl_core.commands.common import add_checkpoint_argument, command_parser, run_command, serving_settings
from mtl_core.errors import InputError
from mtl_core.serving.inputs import read_examples, write_examples
from mtl_core.serving.predictor import Predictor
from mtl_core.tasks import checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("add_task", "Fit a new task's head on labelled examples (a text,label CSV) and write a "
                                        "checkpoint that serves it beside the existing tasks.", serves=True)
    parser.add_argument("--examples", type=Path, required=True,
                        help="CSV with `text` and `label` columns; a row without both (or with more fields than the "
                             "header: quote a text that holds a comma) is refused, naming its line")
    parser.add_argument("--name", required=True, help="the task's name (a-z, 0-9, _): its CSV columns are NAME, "
                                                      "NAME_score, ...")
    parser.add_argument("--output", type=Path, required=True, help="checkpoint folder to write (BASE + the new head)")
    add_checkpoint_argument(parser)
    args = parser.parse_args(argv)

    def work() -> str:
        settings = serving_settings()
        base = args.checkpoint or settings.checkpoint
        if args.output.resolve() == Path(base).resolve():
            raise InputError(f"--output {args.output} is the base checkpoint; write the new one to another folder")
        texts, labels = read_examples(args.examples)
        predictor = Predictor.load(base, settings.backbone, precision=settings.precision)
        report = predictor.add_task(args.name, texts, labels)
        checkpoint.save(predictor.model, args.output, predictor.scopes)
        examples = predictor.scopes[args.name]  # the task's detector keeps its examples
        write_examples(examples.texts, examples.labels, args.output / f"examples_{args.name}.csv")
        (args.output / f"task_{args.name}.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        print("\n".join(report.lines()))
        return f"wrote {args.output} (tasks: {', '.join(predictor.tasks)})"

    return run_command(work)

