"""Embed sentences: python -m mtl_core embed --input FILE(.txt|.csv) --output FILE.npy

Writes a float32 array (N, 384), one unit-length row per sentence, in input order.
"""
from __future__ import annotations

import numpy as np

from mtl_core.commands.common import add_io_arguments, command_parser, run_command
from mtl_core.model.encoder import SentenceEncoder
from mtl_core.serving.inputs import read_sentences
from mtl_core.serving.predictor import PROGRESS_THRESHOLD
from mtl_core.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("embed", "Embed each sentence of a .txt or .csv file.")
    add_io_arguments(parser, output_help=".npy file to write")
    parser.add_argument("--backbone", default=None, help="hub id or folder (default: $MTL_BACKBONE, else bundled)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)

    def work() -> str:
        settings = Settings.from_env()
        sentences = read_sentences(args.input)
        encoder = SentenceEncoder.load(args.backbone or settings.backbone, precision=settings.precision)
        vectors = encoder.encode(sentences, args.batch_size, show_progress=len(sentences) >= PROGRESS_THRESHOLD)
        np.save(args.output, vectors)
        return f"wrote {vectors.shape[0]} x {vectors.shape[1]} embeddings to {args.output}"

    return run_command(work)

