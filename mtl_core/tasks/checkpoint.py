"""Checkpoint folder: config.json (heads, label lists, backbone reference, format version, scope section)
+ weights.safetensors (heads and any fine-tuned task layers; the backbone itself is not copied)
+ each out-of-scope detector's files (the intent head's scope.safetensors and scope_sentences.json,
scope_<task>.* for a head fitted on examples; see scope.py) + for such a head, examples_<task>.csv."""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mtl_core.model.config import CHECKPOINT_FORMAT_VERSION, ModelConfig
from mtl_core.model.encoder import SentenceEncoder
from mtl_core.model.model import MultiTaskModel
from mtl_core.tasks.scope import ScopeDetector

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
TRAINED_PREFIXES = ("task_layers.", "heads.")


class CheckpointError(RuntimeError):
    """A checkpoint folder is missing, incomplete or does not fit the backbone."""


def trained_state(model: MultiTaskModel) -> dict[str, torch.Tensor]:
    """The parameters a checkpoint stores: everything except the shared, frozen backbone."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
            if k.startswith(TRAINED_PREFIXES)}


def save(model: MultiTaskModel, directory: str | Path, scopes: dict[str, ScopeDetector] | None = None) -> Path:
    """Write the model and the out-of-scope detectors of its heads (task name -> detector) into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(trained_state(model), str(directory / WEIGHTS_FILE))
    for task, detector in (scopes or {}).items():
        model.config.head(task).scope = detector.save(directory)
    write_config(model.config, directory)
    return directory


@contextmanager
def writing(directory: str | Path) -> Iterator[Path]:
    """A folder to write a checkpoint into that replaces `directory` only once the block ends without an error
    or Ctrl-C: until then an earlier `directory` stays as it was, and the half-written folder is removed."""
    directory = Path(directory)
    partial, old = directory.with_name(f".{directory.name}.partial"), directory.with_name(f".{directory.name}.old")
    for leftover in (partial, old):
        shutil.rmtree(leftover, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if directory.exists():
        directory.rename(old)
    partial.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def write_config(config: ModelConfig, directory: str | Path) -> None:
    (Path(directory) / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n")


def read_config(directory: str | Path) -> ModelConfig:
    path = Path(directory) / CONFIG_FILE
    if not Path(directory).is_dir():
        raise CheckpointError(f"checkpoint folder {directory} does not exist; pass --checkpoint DIR "
                              "with a folder written by `python -m mtl_core train`")
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: {directory} is not a complete checkpoint")
    try:
        data = json.loads(path.read_text())
        config = ModelConfig.from_dict(data)
    except (json.JSONDecodeError, TypeError, KeyError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not a valid checkpoint config ({err})") from err
    if config.format_version != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {config.format_version}; this code reads "
                              f"version {CHECKPOINT_FORMAT_VERSION}")
    return config


def read_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: {directory} is not a complete checkpoint")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is corrupt or not a safetensors file ({err}); "
                              "restore it from git or retrain") from err


def check_backbone_fits(config: ModelConfig, encoder: SentenceEncoder, where: Path) -> None:
    found = (encoder.hidden_size, len(encoder.layers))
    expected = (config.hidden_size, config.num_backbone_layers)
    if found != expected:
        raise CheckpointError(f"checkpoint {where} was trained on a backbone with hidden size / layers "
                              f"{expected}, but the loaded backbone has {found}")


def load(directory: str | Path, encoder: SentenceEncoder | None = None, device: str = "cpu") -> MultiTaskModel:
    """Rebuild a MultiTaskModel from a checkpoint folder; every stored tensor must match exactly."""
    directory = Path(directory)
    config = read_config(directory)
    weights = read_weights(directory)
    encoder = encoder or SentenceEncoder.load(config.backbone, device=device)
    check_backbone_fits(config, encoder, directory)
    model = MultiTaskModel(encoder, config)
    load_trained_state(model, weights, f"{directory / WEIGHTS_FILE} does not match its config")
    return model.to(device).eval()


def load_trained_state(model: MultiTaskModel, state: dict[str, torch.Tensor], mismatch: str) -> None:
    """Load the trained part of a model (trained_state's keys), checked key by key and shape by shape first:
    load_state_dict(strict=False) alone, which the absent backbone keys require, would skip a mismatch
    silently. `mismatch` opens the error's message."""
    expected = trained_state(model)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong_shape:
        raise CheckpointError(f"{mismatch}: missing {missing[:5]}, unexpected {unexpected[:5]}, "
                              f"wrong shape {wrong_shape[:5]}")
    model.load_state_dict(state, strict=False)  # the frozen backbone's keys are absent; every other key was checked


def load_scopes(directory: str | Path, config: ModelConfig) -> dict[str, ScopeDetector]:
    """The out-of-scope detectors of the checkpoint's heads, by task (empty when none has a scope section)."""
    try:
        return {h.name: ScopeDetector.load(directory, h.scope) for h in config.heads if h.scope is not None}
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise CheckpointError(f"the out-of-scope files of {directory} are missing or broken ({err}); restore them "
                              "from git or refit with `python -m mtl_core fit_scope`") from err
