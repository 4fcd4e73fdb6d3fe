"""Fit the out-of-scope detector (of the intent head: tasks/definitions.SCOPED_TASK) into an existing checkpoint:
python -m mtl_core fit_scope [--checkpoint DIR] [--data-dir DIR]

Training does this itself (TrainConfig.fit_scope); this command adds or refits it without retraining.
Only config.json's "scope" section and the scope files change; the trained weights stay as they are.
"""
from __future__ import annotations

from mtl_core.commands.common import add_checkpoint_argument, add_data_dir_argument, command_parser, run_command
from mtl_core.data.loading import load_task
from mtl_core.serving.predictor import Predictor
from mtl_core.settings import Settings
from mtl_core.tasks import checkpoint
from mtl_core.tasks.definitions import SCOPED_TASK
from mtl_core.training.loop import fit_training_scope


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("fit_scope", f"Fit the {SCOPED_TASK.name} head's out-of-scope detector into a checkpoint.")
    add_checkpoint_argument(parser)
    add_data_dir_argument(parser)
    args = parser.parse_args(argv)

    def work() -> str:
        settings = Settings.from_env()
        directory = args.checkpoint or settings.checkpoint
        data = load_task(args.data_dir or settings.training_data_dir, SCOPED_TASK.name)
        predictor = Predictor.load(directory, settings.backbone, precision=settings.precision)
        detector = fit_training_scope(predictor.encoder, data)
        config = checkpoint.read_config(directory)
        config.head(SCOPED_TASK.name).scope = detector.save(directory)
        checkpoint.write_config(config, directory)
        return f"scope threshold {detector.config.threshold:.4f} ({detector.config.fitted_on}) -> {directory}"

    return run_command(work)

