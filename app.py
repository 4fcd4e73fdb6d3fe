"""Web app: python app.py [--host H] [--port P] [--share] [--checkpoint DIR] [--data-dir DIR]

Runs unchanged on Hugging Face Spaces (which sets GRADIO_SERVER_NAME=0.0.0.0). Set MTL_AUTH=user:password
to require a login (do this whenever you use --share: a share link is public).
"""
from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
from pathlib import Path

from mtl_core.checkpoint import CheckpointError, read_config
from mtl_core.encoder import BackboneNotFoundError
from mtl_core.predict import CHECKPOINT_ENV, DEFAULT_CHECKPOINT, Predictor, SentenceCache
from mtl_core.data import DATA_DIR_ENV
from mtl_core.reference import ReferenceBuilder, load_reference_set
from ui import FIGURES, MAX_FILE_SIZE, build_demo

log = logging.getLogger("app")
AUTH_ENV = "MTL_AUTH"
M_ARENA_MAX = -8  # mallopt parameter number in glibc's malloc.h
# Varied lengths: the first passes pay for thread-pool start-up and kernel selection, not the users.
WARM_UP = ["Hi.", "Where is my card?", "I was charged twice for the same coffee and nobody answers my emails."] * 4
UNTRAINED_BANNER = ("UNTRAINED heads: no trained checkpoint was found, so the intent and sentiment "
                    "predictions below are random. Embeddings, similarity and maps are real.")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Multi-task sentence transformer demo (Gradio).")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="interface to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                        help="port (default: $GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument("--checkpoint", default=None,
                        help=f"trained checkpoint folder (default: ${CHECKPOINT_ENV}, else {DEFAULT_CHECKPOINT})")
    parser.add_argument("--data-dir", default=os.environ.get(DATA_DIR_ENV),
                        help=f"data folder (default: ${DATA_DIR_ENV}); the reference map samples its training "
                             "sets, else uses assets/reference_sentences.csv")
    return parser.parse_args(argv)


def auth_from_env() -> tuple[str, str] | None:
    """('user', 'password') from MTL_AUTH="user:password", or None when unset."""
    value = os.environ.get(AUTH_ENV)
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not (sep and user and password):
        raise SystemExit(f"error: {AUTH_ENV} must look like user:password")
    return user, password


def load_predictor(checkpoint: str | None, data_dir: str | None) -> tuple[Predictor, str | None]:
    """The trained predictor, or random heads with a banner while no checkpoint exists yet."""
    directory = checkpoint or os.environ.get(CHECKPOINT_ENV) or DEFAULT_CHECKPOINT
    try:
        read_config(directory)
    except CheckpointError as err:
        if checkpoint or not data_dir:  # an explicit checkpoint must load; without labels we cannot stand in
            raise SystemExit(f"error: {err}. Train one with `python -m mtl_core.train`, or pass --data-dir "
                             "to start with untrained heads.") from err
        log.warning("%s; starting with UNTRAINED heads", err)
        labels = json.loads((Path(data_dir) / "intent" / "labels.json").read_text())
        return Predictor.untrained(labels), UNTRAINED_BANNER
    predictor = Predictor.load(directory)
    return predictor, None if predictor.trained else UNTRAINED_BANNER


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Keep glibc from giving every request thread its own malloc arena.

    Gradio answers requests from a pool of threads; by default glibc lets each allocate from a separate
    arena (up to 8 per core), and memory freed in one arena is not reused by the others. Measured with
    benchmarks/load.py (1,008 requests, queue limit 2): resident size grew 31% before levelling off with
    the default, 26% with two arenas, at no measurable speed cost. No-op off glibc.
    """
    try:
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, arenas)
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    limit_malloc_arenas()
    args = parse_args(argv)
    auth = auth_from_env()
    if args.share and auth is None:
        log.warning("--share without %s: anyone with the link can use the app", AUTH_ENV)
    try:
        predictor, banner = load_predictor(args.checkpoint, args.data_dir)
    except (CheckpointError, BackboneNotFoundError) as err:
        raise SystemExit(f"error: {err}") from err
    predictor.run(WARM_UP)
    predictor.cache = SentenceCache()  # after the warm-up, so it starts empty
    builder = ReferenceBuilder(lambda: load_reference_set(args.data_dir), predictor.embed).start()
    demo = build_demo(predictor, builder, banner=banner)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, auth=auth,
                max_file_size=MAX_FILE_SIZE, allowed_paths=[str(FIGURES)])


if __name__ == "__main__":
    main()
