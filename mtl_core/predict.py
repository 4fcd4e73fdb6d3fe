"""Predict intent and sentiment: python -m mtl_core.predict --input FILE(.txt|.csv) --output FILE.csv"""
from __future__ import annotations

from .cli import add_checkpoint_argument, add_io_arguments, command_parser, run_command
from .inputs import read_sentences
from .predictor import PROGRESS_THRESHOLD, Predictor
from .records import write_csv
from .settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("predict", "Predict intent and sentiment for each sentence of a .txt or .csv file.")
    add_io_arguments(parser, output_help="CSV file to write")
    add_checkpoint_argument(parser)
    args = parser.parse_args(argv)

    def work() -> str:
        settings = Settings.from_env()
        sentences = read_sentences(args.input)
        predictor = Predictor.load(args.checkpoint or settings.checkpoint, settings.backbone, precision=settings.precision)
        predictions = predictor.predict(sentences, show_progress=len(sentences) >= PROGRESS_THRESHOLD)
        write_csv(predictions, predictor.labels, args.output, predictor.scoped_heads)
        untrained = predictor.model.config.untrained_heads
        note = f" (UNTRAINED {', '.join(untrained)} head: random predictions)" if untrained else ""
        return f"wrote {len(predictions)} predictions to {args.output}{note}"

    return run_command(work)


if __name__ == "__main__":
    raise SystemExit(main())
