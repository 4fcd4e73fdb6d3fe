"""Every `python -m mtl_core <command>` honours every setting of mtl_core/settings.py that applies to it: pointed at
something that does not exist, each fails with a one-line error naming it, instead of quietly using the
default. (The app's settings: tests/test_app.py; bulk's: tests/test_bulk.py.)"""
import shutil

import pytest

from mtl_core.commands import add_task, data, embed, evaluate, fit_scope, predict, train
from mtl_core.settings import DEFAULT_CHECKPOINT, ROOT
from tests.conftest import DATA_DIR

MISSING = "/nonexistent/mtl-setting-check"
BAD = {"MTL_DATA_DIR": MISSING, "MTL_CHECKPOINT": MISSING, "MTL_BACKBONE": MISSING, "MTL_PRECISION": "fp64"}
SENTENCES = "where is my card?\nthis is great\n"


def argv(command: str, tmp_path) -> list[str]:
    (tmp_path / "in.txt").write_text(SENTENCES)
    (tmp_path / "examples.csv").write_text("text,label\n" + "".join(f"{w} {i},{w}\n" for w in ("up", "down")
                                                                  for i in range(4)))
    return {"predict": ["--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "out.csv")],
            "embed": ["--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "out.npy")],
            "evaluate": ["--out", str(tmp_path / "eval"), "--no-scope"],
            "add_task": ["--examples", str(tmp_path / "examples.csv"), "--name", "mood", "--output", str(tmp_path / "t")],
            "fit_scope": [],
            "train": ["--config", str(ROOT / "assets/checkpoint/train_config.json"), "--output", str(tmp_path / "run")],
            "data": ["check"]}[command]


COMMANDS = {"predict": predict, "embed": embed, "evaluate": evaluate, "add_task": add_task, "fit_scope": fit_scope,
            "train": train, "data": data}
HONOURED = {"predict": ["MTL_CHECKPOINT", "MTL_BACKBONE", "MTL_PRECISION"],
            "embed": ["MTL_BACKBONE", "MTL_PRECISION"],
            "evaluate": ["MTL_DATA_DIR", "MTL_CHECKPOINT", "MTL_BACKBONE", "MTL_PRECISION"],
            "add_task": ["MTL_CHECKPOINT", "MTL_BACKBONE", "MTL_PRECISION"],
            "fit_scope": ["MTL_DATA_DIR", "MTL_CHECKPOINT", "MTL_BACKBONE", "MTL_PRECISION"],
            "train": ["MTL_DATA_DIR", "MTL_BACKBONE", "MTL_PRECISION"],
            "data": ["MTL_DATA_DIR"]}


@pytest.mark.parametrize("command, variable", [(c, v) for c, variables in HONOURED.items() for v in variables])
def test_the_command_uses_the_setting(command, variable, tmp_path, monkeypatch, capsys):
    if variable != "MTL_DATA_DIR" and "MTL_DATA_DIR" in HONOURED[command] and not (DATA_DIR / "intent").is_dir():
        pytest.skip("needs the data folder (MTL_DATA_DIR) to get as far as the setting under test")
    # every other setting valid: the data, and a copy of the shipped checkpoint (a command that wrongly ran on
    # would write into the copy, never into the committed one)
    monkeypatch.setenv("MTL_DATA_DIR", str(DATA_DIR))
    monkeypatch.setenv("MTL_CHECKPOINT", str(shutil.copytree(DEFAULT_CHECKPOINT, tmp_path / "checkpoint")))
    for name in ("MTL_BACKBONE", "MTL_PRECISION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, BAD[variable])
    assert COMMANDS[command].main(argv(command, tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and BAD[variable] in err, err
