"""Shared plumbing of the file-in / file-out CLIs: arguments, input reading, one-line errors."""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from .checkpoint import CheckpointError
from .encoder import BackboneNotFoundError
from .inputs import InputError, read_sentences

USER_ERRORS = (InputError, CheckpointError, BackboneNotFoundError, OSError)


def io_parser(description: str, output_help: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--input", required=True, help=".txt (one sentence per line) or .csv with a `text` column")
    parser.add_argument("--output", required=True, help=output_help)
    return parser


def run_cli(parser: argparse.ArgumentParser, work: Callable[[argparse.Namespace, list[str]], str],
            argv: list[str] | None = None) -> int:
    """Parse, read the input file, run `work`; user errors become one line on stderr and exit code 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parser.parse_args(argv)
    try:
        message = work(args, read_sentences(args.input))
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(message, file=sys.stderr)
    return 0
