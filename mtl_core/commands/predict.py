"""Predict intent and sentiment: python -m mtl_core predict --input FILE(.txt|.csv) --output FILE.csv

The output has one row per sentence: a .csv input's other columns first, as they are and in their order
(one named like an output column gets `input_` before its name: records.carried_names), then the prediction
columns (records.csv_columns). A .csv row with an empty text is skipped, its other columns with it."""
from __future__ import annotations

from mtl_core.commands.common import add_checkpoint_argument, add_io_arguments, command_parser, run_command
from mtl_core.serving.inputs import read_table
from mtl_core.serving.predictor import PROGRESS_THRESHOLD, Predictor
from mtl_core.serving.records import write_csv
from mtl_core.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("predict", "Predict intent and sentiment for each sentence of a .txt or .csv file.")
    add_io_arguments(parser, output_help="CSV file to write: a .csv input's other columns, then the predictions")
    add_checkpoint_argument(parser)
    args = parser.parse_args(argv)

    def work() -> str:
        settings = Settings.from_env()
        table = read_table(args.input)
        predictor = Predictor.load(args.checkpoint or settings.checkpoint, settings.backbone, precision=settings.precision)
        predictions = predictor.predict(table.texts, show_progress=len(table.texts) >= PROGRESS_THRESHOLD)
        write_csv(predictions, predictor.labels, args.output, predictor.scoped_heads, table.columns, table.values)
        untrained = predictor.model.config.untrained_heads
        note = f" (UNTRAINED {', '.join(untrained)} head: random predictions)" if untrained else ""
        return f"wrote {len(predictions)} predictions to {args.output}{note}"

    return run_command(work)

