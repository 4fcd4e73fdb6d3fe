"""What every `python -m mtl_core <command>` shares: its parser, reading the input file, and one
error path (a user error is one line on stderr and exit code 2, never a traceback)."""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from mtl_core.data.loading import DataError
from mtl_core.model.encoder import BackboneNotFoundError
from mtl_core.serving.inputs import InputError
from mtl_core.settings import SettingsError
from mtl_core.tasks.checkpoint import CheckpointError

USER_ERRORS = (InputError, CheckpointError, BackboneNotFoundError, DataError, SettingsError, OSError)


def command_parser(command: str, description: str) -> argparse.ArgumentParser:
    """A parser whose --help shows how the command is really run: `python -m mtl_core <command>`."""
    return argparse.ArgumentParser(prog=f"python -m mtl_core {command}", description=description)


def add_io_arguments(parser: argparse.ArgumentParser, output_help: str) -> None:
    parser.add_argument("--input", required=True, help=".txt (one sentence per line) or .csv with a `text` column")
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
