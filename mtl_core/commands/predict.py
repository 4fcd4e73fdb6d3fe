"""Predict intent and sentiment: python -m mtl_core predict --input FILE(.txt|.csv) --output FILE.csv

The output has one row per input row, in order (a .txt's line N is output row N): a .csv input's other columns
first, as they are and in their order (one named like an output column gets `input_` before its name:
records.carried_names), then the prediction columns (records.csv_columns): `text`, `truncated` (1: cut at the
encoder's token limit), `error` (why the row could not be scored, read as bulk reads it: serving/inputs.py) and
each task's columns, empty on a row with an error."""
from __future__ import annotations

from mtl_core.commands.common import (
    add_checkpoint_argument,
    add_io_arguments,
    command_parser,
    run_command,
    serving_settings,
)
from mtl_core.serving.inputs import read_table
from mtl_core.serving.predictor import PROGRESS_THRESHOLD, Predictor
from mtl_core.serving.records import write_csv


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("predict", "Predict intent and sentiment for each sentence of a .txt or .csv file.",
                            serves=True)
    add_io_arguments(parser, output_help="CSV file to write: a .csv input's other columns, then the predictions")
    add_checkpoint_argument(parser)
    args = parser.parse_args(argv)

    def work() -> str:
        settings = serving_settings()
        table = read_table(args.input)
        predictor = Predictor.load(args.checkpoint or settings.checkpoint, settings.backbone, precision=settings.precision)
        predictions = predictor.predict(table.texts, show_progress=len(table.texts) >= PROGRESS_THRESHOLD)
        write_csv(predictions, predictor.labels, args.output, predictor.scoped_heads, table.columns, table.values,
                  table.rows)
        untrained = predictor.model.config.untrained_heads
        note = f" (UNTRAINED {', '.join(untrained)} head: random predictions)" if untrained else ""
        cut = sum(p.truncated for p in predictions)
        cut_note = f"; {cut:,} cut at the {predictor.encoder.max_tokens}-token limit (truncated = 1)" if cut else ""
        return (f"wrote {len(table.rows):,} rows to {args.output} in {predictor.encoder.precision}: {len(predictions):,} "
                f"predictions{cut_note}{table.error_note()}{note}")

    return run_command(work)

