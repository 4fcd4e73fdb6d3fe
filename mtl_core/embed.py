"""Embed CLI: python -m mtl_core.embed --input FILE(.txt|.csv) --output FILE.npy

Writes a float32 array (N, 384), one unit-length row per sentence, in input order.
"""
from __future__ import annotations

import argparse

import numpy as np

from .cli import io_parser, run_cli
from .encoder import SentenceEncoder
from .predict import PROGRESS_THRESHOLD


def main(argv: list[str] | None = None) -> int:
    parser = io_parser("Embed each sentence of a .txt or .csv file.", output_help=".npy file to write")
    parser.add_argument("--backbone", default=None, help="hub id or folder (default: $MTL_BACKBONE, else bundled)")
    parser.add_argument("--batch-size", type=int, default=32)

    def work(args: argparse.Namespace, sentences: list[str]) -> str:
        encoder = SentenceEncoder.load(args.backbone)
        vectors = encoder.encode(sentences, args.batch_size, show_progress=len(sentences) >= PROGRESS_THRESHOLD)
        np.save(args.output, vectors)
        return f"wrote {vectors.shape[0]} x {vectors.shape[1]} embeddings to {args.output}"

    return run_cli(parser, work, argv)


if __name__ == "__main__":
    raise SystemExit(main())
