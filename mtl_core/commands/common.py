"""What every `python -m mtl_core <command>` shares: its parser, reading the input file, and one
error path (a user error is one line on stderr and exit code 2, never a traceback)."""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from mtl_core.data.loading import DataError
from mtl_core.errors import InputError
from mtl_core.model.encoder import BackboneNotFoundError
from mtl_core.settings import SERVING_PRECISION, Settings, SettingsError
from mtl_core.tasks.checkpoint import CheckpointError

USER_ERRORS = (InputError, CheckpointError, BackboneNotFoundError, DataError, SettingsError, OSError)


SERVING_HELP = (f"Precision: MTL_PRECISION, default {SERVING_PRECISION} as the app serves (bf16 on CPUs with AMX or "
                "AVX512-BF16, else fp32), so that the app, predict, embed, bulk and add_task give the same answers; "
                "MTL_PRECISION=fp32 gives the reference values that evaluate reports.")


def command_parser(command: str, description: str, serves: bool = False) -> argparse.ArgumentParser:
    """A parser whose --help shows how the command is really run: `python -m mtl_core <command>`; for a
    command that `serves` predictions, also its precision (serving_settings)."""
    return argparse.ArgumentParser(prog=f"python -m mtl_core {command}", description=description,
                                   epilog=SERVING_HELP if serves else None)


def serving_settings() -> Settings:
    """The settings of a command that serves predictions: the app's precision unless MTL_PRECISION says."""
    return Settings.from_env(default_precision=SERVING_PRECISION)


def add_io_arguments(parser: argparse.ArgumentParser, output_help: str) -> None:
    parser.add_argument("--input", required=True, help=".txt (one sentence per line) or .csv with a `text` column; "
                                                       "every row gets an output row, one that cannot be scored "
                                                       "(empty, not UTF-8, too long) with its error")
    parser.add_argument("--output", required=True, help=output_help)


def add_checkpoint_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path,
                        help="checkpoint folder (default: $MTL_CHECKPOINT, else assets/checkpoint)")


def add_data_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, help="data folder (default: $MTL_DATA_DIR, else data/ in the checkout)")


def run_command(work: Callable[[], str | None], log_level: int = logging.WARNING) -> int:
    """Run a command's work; print its closing message, or the user error, on stderr."""
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        message = work()
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if message:
        print(message, file=sys.stderr)
    return 0
