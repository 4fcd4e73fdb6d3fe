"""Add a task from labelled examples to a checkpoint:
python -m mtl_core add_task --examples FILE.csv --name NAME --output DIR [--checkpoint BASE]

DIR gets everything BASE serves plus a head fitted on the examples (tasks/fewshot.py; no backbone training), its
out-of-scope detector and its examples (examples_NAME.csv, to refit or edit); `python -m mtl_core predict
--checkpoint DIR` then writes NAME, NAME_score, NAME_closest, NAME_in_scope and NAME_scope_score beside the other columns.
--improve first trains the task's own copy of the top encoder layers on the examples (tasks/improve.py: about a
minute for 770 examples on 2 CPU cores), then fits the head on their output.

DIR is written whole or not at all: into a sibling folder first, which replaces DIR at the end, so Ctrl-C (or an
error) leaves an earlier DIR as it was.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tqdm.auto import tqdm

from mtl_core.commands.common import add_checkpoint_argument, command_parser, run_command, serving_settings
from mtl_core.errors import InputError
from mtl_core.serving.inputs import read_examples, write_examples
from mtl_core.serving.predictor import Predictor
from mtl_core.tasks import checkpoint
from mtl_core.tasks.improve import Progress


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("add_task", "Fit a new task's head on labelled examples (a text,label CSV) and write a "
                                        "checkpoint that serves it beside the existing tasks.", serves=True)
    parser.add_argument("--examples", type=Path, required=True,
                        help="CSV with `text` and `label` columns; a row without both (or with more fields than the "
                             "header: quote a text that holds a comma) is refused, naming its line")
    parser.add_argument("--name", required=True, help="the task's name (a-z, 0-9, _): its CSV columns are NAME, "
                                                      "NAME_score, ...")
    parser.add_argument("--output", type=Path, required=True, help="checkpoint folder to write (BASE + the new head)")
    parser.add_argument("--improve", action="store_true",
                        help="train the task's own copy of the top 2 encoder layers on the examples first (contrastive, "
                             "as SetFit; about a minute for 770 examples on 2 CPU cores): more accurate, and each "
                             "sentence then costs 2 more layer passes (docs/fewshot.md)")
    add_checkpoint_argument(parser)
    args = parser.parse_args(argv)

    def work() -> str:
        settings = serving_settings()
        base = args.checkpoint or settings.checkpoint
        if args.output.resolve() == Path(base).resolve():
            raise InputError(f"--output {args.output} is the base checkpoint; write the new one to another folder")
        texts, labels = read_examples(args.examples)
        predictor = Predictor.load(base, settings.backbone, precision=settings.precision)
        with step_bar("improve: contrastive steps", args.improve) as progress:
            report = predictor.add_task(args.name, texts, labels, improve=args.improve, progress=progress)
        with checkpoint.writing(args.output) as folder:
            checkpoint.save(predictor.model, folder, predictor.scopes)
            examples = predictor.scopes[args.name]  # the task's detector keeps its examples
            write_examples(examples.texts, examples.labels, folder / f"examples_{args.name}.csv")
            (folder / f"task_{args.name}.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        print("\n".join(report.lines()))
        return f"wrote {args.output} (tasks: {', '.join(predictor.tasks)})"

    try:
        return run_command(work)
    except KeyboardInterrupt:
        print(f"\ninterrupted: {args.output} was not written (an earlier one is as it was)", file=sys.stderr)
        return 130


@contextmanager
def step_bar(description: str, shown: bool) -> Iterator[Progress | None]:
    """A Progress callback (steps done, steps in all) that moves a tqdm bar, opened at the first step (so that
    an error in the examples comes alone); None when not shown."""
    if not shown:
        yield None
        return
    bars: list[tqdm] = []

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(desc=description, total=total, unit="step"))
        bars[0].update(done - bars[0].n)
    try:
        yield progress
    finally:
        for bar in bars:
            bar.close()
