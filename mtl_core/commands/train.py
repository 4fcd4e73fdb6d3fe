"""Train the heads: python -m mtl_core train --output runs/NAME [--config experiments/X.json] [--task-layers K] ...

One flag per TrainConfig field, generated from the dataclass (help text included); a --config JSON
file sets fields too, and flags given on the command line override it.
"""
from __future__ import annotations

import argparse
import json
import logging
from dataclasses import MISSING, fields
from pathlib import Path

from mtl_core.commands.common import command_parser, run_command
from mtl_core.model.encoder import SentenceEncoder
from mtl_core.settings import Settings, SettingsError
from mtl_core.training.loop import TrainConfig, train

log = logging.getLogger(__name__)


def parse_mapping(text: str, cast=float) -> dict:
    """Parse `intent=1,sentiment=2` into a dict of task name -> value: intent -> 1.0, sentiment -> 2.0."""
    pairs = [item.split("=", 1) for item in text.split(",") if item]
    if any(len(p) != 2 for p in pairs):
        raise argparse.ArgumentTypeError(f"expected task=value[,task=value], got {text!r}")
    return {k.strip(): cast(v) for k, v in pairs}


def comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


# TrainConfig's annotations (strings under `from __future__ import annotations`) -> how to read a flag
FLAG_TYPES = {"int": int, "int | None": int, "float": float, "str": str, "str | None": str,
              "list[str]": comma_list, "dict[str, float]": parse_mapping,
              "dict[str, int]": lambda text: parse_mapping(text, int)}


def default_text(f) -> str:
    value = f.default_factory() if f.default is MISSING else f.default
    return "" if value in (None, [], {}) else f" (default: {value})"


def parser() -> argparse.ArgumentParser:
    p = command_parser("train", "Train the intent and sentiment heads on one shared encoder.")
    p.add_argument("--config", help="JSON file of TrainConfig fields; flags given here override it")
    for f in fields(TrainConfig):
        flag, help_text = "--" + f.name.replace("_", "-"), f.metadata["help"]
        if f.type == "bool":
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text + default_text(f))
        else:
            p.add_argument(flag, type=FLAG_TYPES[f.type], choices=f.metadata.get("choices"), default=None,
                           help=help_text + default_text(f))
    p.add_argument("--no-cache", dest="cache_dir", action="store_const", const="", help="do not cache features")
    return p


def resolve_config(args: argparse.Namespace, settings: Settings | None = None) -> TrainConfig:
    """TrainConfig from the defaults, then the --config file, then the environment's settings (MTL_DATA_DIR,
    MTL_BACKBONE: where this machine keeps things wins over what a config file says), then the flags."""
    settings = settings or Settings()
    values = json.loads(Path(args.config).read_text()) if args.config else {}
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(values) - known
    if unknown:
        raise SettingsError(f"{args.config} has unknown fields {sorted(unknown)}; valid: {sorted(known)}")
    environment = {"data_dir": settings.data_dir and str(settings.data_dir), "backbone": settings.backbone}
    values.update({k: v for k, v in environment.items() if v is not None})
    values.update({k: v for k, v in vars(args).items() if k in known and v is not None})
    if values.get("cache_dir") == "":
        values["cache_dir"] = None
    return TrainConfig(**{"data_dir": str(settings.training_data_dir), **values})


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def work() -> str:
        settings = Settings.from_env()
        cfg = resolve_config(args, settings)
        metrics = train(cfg, SentenceEncoder.load(cfg.backbone, precision=settings.precision))
        return (f"done in {metrics['wall_seconds']['total']:.0f} s; best epoch {metrics['best_epoch']}, "
                f"dev {metrics['dev']} -> {cfg.output}")

    return run_command(work, logging.INFO)

