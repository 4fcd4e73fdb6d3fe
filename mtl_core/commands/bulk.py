"""`python -m mtl_core bulk`: score files of any size on Ray Data (mtl_core/bulk/job.py says how it runs).
Needs the bulk requirements (pip install -r requirements-bulk.txt)."""
from __future__ import annotations

import logging
import sys

from mtl_core.bulk.job import BATCH_SIZE, SUMMARY_FILE, THREADS_PER_ACTOR, Job, run_job
from mtl_core.bulk.sources import MIN_PART_ROWS, PART_ROWS, PARTS_PER_ACTOR
from mtl_core.commands.common import add_checkpoint_argument, command_parser, run_command, serving_settings
from mtl_core.settings import repo_relative


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("bulk", "Score files of any size with every head of a checkpoint on Ray Data "
                                    "(this machine's CPUs, or a cluster with --address); resumable.", serves=True)
    parser.add_argument("--input", nargs="+", required=True,
                        help="files (.txt, .csv, .jsonl, .parquet), folders or globs; paths or URIs (s3://...)")
    parser.add_argument("--output", required=True, help="folder (or URI) for the Parquet files; rerun to resume")
    parser.add_argument("--text-column", default="text", help="the sentence column of .csv/.jsonl/.parquet inputs")
    parser.add_argument("--id-column", help="a column to use as each row's id (default: FILE:LINE or FILE:ROW)")
    parser.add_argument("--embeddings", action="store_true", help="also write each row's 384-float embedding")
    parser.add_argument("--address", help="a Ray cluster: `auto` or ray://HOST:10001 (default: start Ray here)")
    add_checkpoint_argument(parser)
    parser.add_argument("--part-rows", type=int,
                        help=f"rows per output file, the unit of resumption (default: {PARTS_PER_ACTOR} parts per actor, "
                             f"{MIN_PART_ROWS:,} to {PART_ROWS:,} rows, chosen at the first run and kept)")
    parser.add_argument("--actors", type=int, help="scoring actors (default: the CPUs / --threads)")
    parser.add_argument("--threads", type=int, default=THREADS_PER_ACTOR, help="torch threads per actor")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="sentences per encoder call")
    args = parser.parse_args(argv)

    def work() -> str:
        settings = serving_settings()
        job = Job([str(p) for p in args.input], args.text_column, args.id_column, args.embeddings,
                  repo_relative(args.checkpoint or settings.checkpoint), args.part_rows)
        summary = run_job(job, args.output, settings, args.address, args.actors, args.batch_size, args.threads)
        return f"{summary.text()}\nwrote {args.output}/*.parquet ({SUMMARY_FILE}: these figures)"

    try:
        return run_command(work, log_level=logging.INFO)
    except KeyboardInterrupt:
        print(f"\ninterrupted: the parts written so far are kept in {args.output}; run the same command again "
              "to score the rest", file=sys.stderr)
        return 130
