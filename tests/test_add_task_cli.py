"""`python -m mtl_core add_task` on the tiny checkpoint, run as a user runs it, then `python -m mtl_core predict`
on what it wrote: the files, the new columns in their documented place, and one-line errors."""
from __future__ import annotations

import csv
import json
import shutil

import pytest

from mtl_core.serving.inputs import write_examples

from test_predict_cli import DOCUMENTED_COLUMNS, run_cli

NAME = "urgency"
ROWS = {"low": ["can wait", "no rush at all", "whenever you can", "next week is fine"],
        "high": ["urgent please help", "right now!", "my account is blocked and I need it today", "asap"]}
TEXTS = [t for ts in ROWS.values() for t in ts] + ["can wait"]  # one repeat: dropped and counted
LABELS = [label for label, ts in ROWS.items() for _ in ts] + ["low"]


def one_line_error(result, match: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0], result.stderr


@pytest.fixture(scope="module")
def examples_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("examples") / "urgency.csv"
    write_examples(TEXTS, LABELS, path)
    return path


@pytest.fixture(scope="module")
def added(tiny_checkpoint, examples_csv, tmp_path_factory):
    """(the add_task run, the folder it wrote)."""
    out = tmp_path_factory.mktemp("added") / "ckpt"
    result = run_cli("add_task", "--examples", examples_csv, "--name", NAME, "--output", out,
                     "--checkpoint", tiny_checkpoint)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, out


def test_help_shows_how_the_command_is_run():
    result = run_cli("add_task", "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: python -m mtl_core add_task")
    for flag in ("--examples", "--name", "--output", "--checkpoint"):
        assert flag in result.stdout


def test_add_task_writes_a_checkpoint_with_the_new_head(added, tiny_checkpoint):
    result, out = added
    config = json.loads((out / "config.json").read_text())
    assert [h["name"] for h in config["heads"]] == ["intent", "sentiment", NAME]
    head = config["heads"][2]
    assert head["kind"] == "examples" and head["reads"] == "embedding" and head["labels"] == ["low", "high"]
    assert head["trained"] is True and head["scope"]["files"] == f"scope_{NAME}" and head["scope"]["head"] == NAME
    assert config["heads"][0]["scope"] is None  # the tiny base has no intent detector; none was invented
    for name in ("weights.safetensors", f"scope_{NAME}.safetensors", f"scope_{NAME}_sentences.json",
                 f"examples_{NAME}.csv", f"task_{NAME}.json"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / f"examples_{NAME}.csv").open(encoding="utf-8")))
    assert [(r["text"], r["label"]) for r in rows] == list(zip(TEXTS[:-1], LABELS[:-1]))  # the repeat dropped
    report = json.loads((out / f"task_{NAME}.json").read_text())
    assert report["name"] == NAME and report["counts"] == {"low": 4, "high": 4} and report["duplicates_dropped"] == 1
    assert report["method"] in report["candidates"] and len(report["candidates"]) == 4
    assert f"task '{NAME}': 2 labels, 8 examples (1 duplicates dropped)" in result.stdout
    assert result.stderr.strip().splitlines()[-1].startswith(f"wrote {out}")
    # the base checkpoint is untouched
    base = json.loads((tiny_checkpoint / "config.json").read_text())
    assert [h["name"] for h in base["heads"]] == ["intent", "sentiment"]
    assert not list(tiny_checkpoint.glob(f"*{NAME}*"))


def test_predict_on_the_new_checkpoint_writes_the_task_columns_in_their_place(added, tmp_path):
    _, out = added
    src = tmp_path / "in.txt"
    src.write_text("can wait\nhelp me right now\n", encoding="utf-8")
    target = tmp_path / "out.csv"
    result = run_cli("predict", "--input", src, "--output", target, "--checkpoint", out)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert list(rows[0]) == DOCUMENTED_COLUMNS + [NAME, f"{NAME}_score", f"{NAME}_low", f"{NAME}_high",
                                                  f"{NAME}_closest", f"{NAME}_in_scope", f"{NAME}_scope_score"]
    assert [r["text"] for r in rows] == ["can wait", "help me right now"]
    for r in rows:
        assert r[f"{NAME}_closest"] in ("low", "high") and r[f"{NAME}_in_scope"] in ("0", "1")
        assert r[NAME] == (r[f"{NAME}_closest"] if r[f"{NAME}_in_scope"] == "1" else "none")  # as the app's "— none"
        assert float(r[f"{NAME}_score"]) == max(float(r[f"{NAME}_low"]), float(r[f"{NAME}_high"]))
        assert abs(float(r[f"{NAME}_low"]) + float(r[f"{NAME}_high"]) - 1) < 1e-3
    assert rows[0][f"{NAME}_in_scope"] == "1"  # an example itself


def test_a_task_added_on_top_of_an_added_one(added, examples_csv, tmp_path):
    _, base = added
    out = tmp_path / "twice"
    result = run_cli("add_task", "--examples", examples_csv, "--name", "second", "--output", out, "--checkpoint", base)
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert [h["name"] for h in config["heads"]] == ["intent", "sentiment", NAME, "second"]
    assert config["heads"][2]["scope"]["files"] == f"scope_{NAME}" and (out / f"scope_{NAME}.safetensors").is_file()


@pytest.mark.parametrize("case, match", [
    ("missing", "does not exist"),
    ("no_label", "no `label` column"),
    ("taken", "already has a task named 'intent'"),
    ("bad_name", "must start with a lowercase letter"),
    ("one_label", "a task needs at least 2 labels"),
    ("same_as_base", "is the base checkpoint"),
    # an unquoted comma: the line and the extra field, not "1 label(s) have fewer than 2 examples"
    ("unquoted_comma", "unquoted_comma.csv line 3, text: 3 fields where the header has 2 (extra: 'a')"),
])
def test_errors_are_one_line_with_exit_code_2(tiny_checkpoint, examples_csv, tmp_path, case, match):
    base = tmp_path / "base"
    shutil.copytree(tiny_checkpoint, base)  # a copy: a failing run must never touch the shared fixture
    examples, name, out = examples_csv, NAME, tmp_path / "out"
    if case == "missing":
        examples = tmp_path / "nowhere.csv"
    elif case == "no_label":
        examples = tmp_path / "no_label.csv"
        examples.write_text("text,tag\nhello,a\nhi,a\nbye,b\nciao,b\n", encoding="utf-8")
    elif case == "taken":
        name = "intent"
    elif case == "bad_name":
        name = "My Task"
    elif case == "one_label":
        examples = tmp_path / "one_label.csv"
        examples.write_text("text,label\nhello,a\nhi,a\n", encoding="utf-8")
    elif case == "same_as_base":
        out = base
    elif case == "unquoted_comma":
        examples = tmp_path / "unquoted_comma.csv"
        examples.write_text("text,label\nhello there,a\nhi, you,a\nbye,b\nciao,b\n", encoding="utf-8")
    before = sorted(p.name for p in base.iterdir())
    result = run_cli("add_task", "--examples", examples, "--name", name, "--output", out, "--checkpoint", base)
    one_line_error(result, match)
    assert sorted(p.name for p in base.iterdir()) == before
    if case != "same_as_base":
        assert not out.exists()  # nothing half-written


def test_a_legacy_checkpoint_with_a_top_level_scope_keeps_its_detector(tiny_checkpoint, examples_csv, tmp_path):
    """The shipped assets/checkpoint stores the intent detector as one top-level "scope" section (no "files"
    key): adding a task moves it under its head, and predictions keep the intent scope columns."""
    import numpy as np

    from mtl_core.serving.predictor import Predictor
    from mtl_core.tasks import scope

    base = tmp_path / "legacy"
    shutil.copytree(tiny_checkpoint, base)
    predictor = Predictor.load(base)
    texts = [t for ts in ROWS.values() for t in ts]
    detector = scope.ScopeDetector.fit_knn(predictor.embed(texts), texts, ["x"] * len(texts), predictor.embed(texts), "t",
                                           "intent")
    detector.save(base)  # scope.safetensors, scope_sentences.json: the shipped names
    config = json.loads((base / "config.json").read_text())
    legacy = {k: v for k, v in detector.config.__dict__.items() if k != "files"}
    config["scope"] = json.loads(json.dumps(legacy))
    (base / "config.json").write_text(json.dumps(config))
    assert Predictor.load(base).scopes["intent"].config.threshold == detector.config.threshold  # read as before

    out = tmp_path / "out"
    result = run_cli("add_task", "--examples", examples_csv, "--name", NAME, "--output", out, "--checkpoint", base)
    assert result.returncode == 0, result.stderr[-3000:]
    written = json.loads((out / "config.json").read_text())
    assert "scope" not in written
    assert written["heads"][0]["scope"]["threshold"] == detector.config.threshold
    reloaded = Predictor.load(out)
    assert set(reloaded.scopes) == {"intent", NAME}
    np.testing.assert_array_equal(reloaded.scopes["intent"].reference, detector.reference)
    src, target = tmp_path / "in.txt", tmp_path / "out.csv"
    src.write_text("can wait\n", encoding="utf-8")
    assert run_cli("predict", "--input", src, "--output", target, "--checkpoint", out).returncode == 0
    header = next(csv.reader(target.open(encoding="utf-8")))
    assert header[-6:] == ["intent_closest", "intent_in_scope", "intent_scope_score",
                           f"{NAME}_closest", f"{NAME}_in_scope", f"{NAME}_scope_score"]
