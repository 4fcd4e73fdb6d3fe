"""Web app: python app.py [--host H] [--port P] [--share] [--checkpoint DIR] [--data-dir DIR]

Runs unchanged on Hugging Face Spaces (which sets GRADIO_SERVER_NAME=0.0.0.0). Set MTL_AUTH=user:password
to require a login (do this whenever you use --share: a share link is public). Every environment
variable is listed in mtl_core/settings.py.
"""
from __future__ import annotations

import argparse
import ctypes
import logging
from dataclasses import replace
from pathlib import Path

from mtl_core.data.loading import DataError, builtin_labels
from mtl_core.model.encoder import BackboneNotFoundError
from mtl_core.serving.predictor import Predictor, SentenceCache
from mtl_core.serving.reference import ReferenceBuilder, load_reference_set
from mtl_core.serving.service import Service
from mtl_core.settings import SERVING_PRECISION, Settings, SettingsError
from mtl_core.tasks.checkpoint import CheckpointError, read_config
from ui import CSS, build_demo
from ui.texts import FIGURES, MAX_FILE_SIZE, UNTRAINED_BANNER

log = logging.getLogger("app")
M_ARENA_MAX = -8  # mallopt parameter number in glibc's malloc.h
# Varied lengths: the first passes pay for thread-pool start-up and kernel selection, not the users.
WARM_UP = ["Hi.", "Where is my card?", "I was charged twice for the same coffee and nobody answers my emails."] * 4
# Serving starts once the reference map is built (about a minute on 2 cores, mostly compiling UMAP), so no
# visitor meets a map without it; past this the app serves anyway and says the map is still being built.
REFERENCE_WAIT_S = 300


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python app.py", description="Multi-task sentence transformer demo (Gradio).")
    parser.add_argument("--host", help="interface to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: $GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument("--checkpoint", type=Path, help="trained checkpoint folder (default: $MTL_CHECKPOINT, else "
                                                        "assets/checkpoint)")
    parser.add_argument("--data-dir", type=Path, help="data folder (default: $MTL_DATA_DIR); the reference map "
                                                      "samples its training sets, else uses assets/reference_sentences.csv")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    """The environment's settings with the command line's flags on top."""
    flags = {"host": args.host, "port": args.port, "checkpoint": args.checkpoint, "data_dir": args.data_dir}
    # bf16 where the CPU multiplies it in hardware, as every command that serves (settings.py says why);
    # MTL_PRECISION=fp32 gives the reference values exactly
    settings = Settings.from_env(default_precision=SERVING_PRECISION)
    return replace(settings, **{k: v for k, v in flags.items() if v is not None})


def load_predictor(settings: Settings, checkpoint_given: bool) -> tuple[Predictor, str | None]:
    """The trained predictor, or random heads with a banner while no checkpoint exists yet."""
    try:
        read_config(settings.checkpoint)
    except CheckpointError as err:
        if checkpoint_given or not settings.data_dir:  # an explicit checkpoint must load; without labels we cannot stand in
            raise SystemExit(f"error: {err}. Train one with `python -m mtl_core train`, or pass --data-dir "
                             "to start with untrained heads.") from err
        log.warning("%s; starting with UNTRAINED heads", err)
        predictor = Predictor.untrained(builtin_labels(settings.data_dir))
    else:
        predictor = Predictor.load(settings.checkpoint, settings.backbone, precision=settings.precision)
    untrained = predictor.model.config.untrained_heads
    return predictor, UNTRAINED_BANNER.format(heads=", ".join(untrained)) if untrained else None


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


def start(args: argparse.Namespace) -> None:
    settings = settings_from(args)
    if args.share and settings.auth is None:
        log.warning("--share without MTL_AUTH: anyone with the link can use the app")
    predictor, banner = load_predictor(settings, checkpoint_given=args.checkpoint is not None)
    log.info("model loaded; serving in %s", predictor.encoder.precision)
    predictor.run(WARM_UP)
    predictor.cache = SentenceCache()  # after the warm-up, so it starts empty
    builder = ReferenceBuilder(lambda: load_reference_set(settings.data_dir), predictor.embed).start()
    demo = build_demo(Service(predictor, builder, settings), banner=banner)
    log.info("building the reference map before serving (about a minute on 2 cores)")
    if not builder.wait(REFERENCE_WAIT_S):
        log.warning("serving before the reference map is ready: %s", builder.status)
    # quiet: Gradio's own start-up lines suggest `share=True` in launch(); this app's switch is --share
    demo.launch(server_name=settings.host, server_port=settings.port, share=args.share, auth=settings.auth,
                max_file_size=MAX_FILE_SIZE, allowed_paths=[str(FIGURES)], quiet=True, prevent_thread_lock=True,
                css=CSS)
    print(f"Running on {demo.local_url}" + (f"\nPublic link: {demo.share_url}" if demo.share_url else
                                            "\nAdd --share for a public link (and set MTL_AUTH)."), flush=True)
    demo.block_thread()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    limit_malloc_arenas()
    args = parse_args(argv)
    try:
        start(args)
    except (CheckpointError, BackboneNotFoundError, DataError, SettingsError) as err:
        raise SystemExit(f"error: {err}") from err


if __name__ == "__main__":
    main()
