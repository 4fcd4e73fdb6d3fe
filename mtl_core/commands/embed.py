"""Embed sentences: python -m mtl_core embed --input FILE(.txt|.csv) --output FILE.npy

Writes a float32 array (N, 384), one unit-length row per input row, in input order (a .txt's line N is row N);
a row that cannot be embedded (empty, not UTF-8, too long: read as predict and bulk read it) is a row of NaN.
"""
from __future__ import annotations

import numpy as np

from mtl_core.commands.common import add_io_arguments, command_parser, run_command, serving_settings
from mtl_core.model.encoder import SentenceEncoder
from mtl_core.serving.inputs import read_table
from mtl_core.serving.predictor import PROGRESS_THRESHOLD


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("embed", "Embed each sentence of a .txt or .csv file.", serves=True)
    add_io_arguments(parser, output_help=".npy file to write")
    parser.add_argument("--backbone", default=None, help="hub id or folder (default: $MTL_BACKBONE, else bundled)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)

    def work() -> str:
        settings = serving_settings()
        table = read_table(args.input)
        encoder = SentenceEncoder.load(args.backbone or settings.backbone, precision=settings.precision)
        found = encoder.encode(table.texts, args.batch_size, show_progress=len(table.texts) >= PROGRESS_THRESHOLD)
        vectors = np.full((len(table.rows), found.shape[1]), np.nan, dtype=np.float32)  # (N, H); NaN: an error row
        vectors[table.scored] = found
        np.save(args.output, vectors)
        return (f"wrote {vectors.shape[0]} x {vectors.shape[1]} embeddings to {args.output} in {encoder.precision}"
                + (f"{table.error_note()}: their rows are NaN" if table.errors() else ""))

    return run_command(work)

