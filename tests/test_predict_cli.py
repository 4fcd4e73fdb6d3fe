import csv
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from mtl_core.errors import InputError
from mtl_core.serving.inputs import MAX_ROW_CHARS, parse_table
from mtl_core.serving.predictor import Predictor
from tests.conftest import URGENCY

from conftest import INTENTS


def test_predict_record_structure(tiny_checkpoint):
    predictor = Predictor.load(tiny_checkpoint)
    assert predictor.trained is False  # an untrained model says so
    records = [p.to_api() for p in predictor.predict(["my card is lost", "great app"])]
    assert [r["text"] for r in records] == ["my card is lost", "great app"]
    intent, sentiment = records[0]["intent"], records[0]["sentiment"]
    assert intent["label"] in INTENTS and len(intent["top"]) == 5 and "probs" not in intent
    assert intent["top"][0] == [intent["label"], intent["score"]]
    assert [s for _, s in intent["top"]] == sorted((s for _, s in intent["top"]), reverse=True)
    assert set(sentiment["probs"]) == {"negative", "neutral", "positive"}
    assert sentiment["probs"][sentiment["label"]] == sentiment["score"] == max(sentiment["probs"].values())
    assert abs(sum(sentiment["probs"].values()) - 1) < 1e-5
    assert records[0]["truncated"] is False


def test_run_reuses_one_pass_for_embeddings_and_predictions(tiny_checkpoint):
    predictor = Predictor.load(tiny_checkpoint)
    results = predictor.run(["a", "bb bb", "c c c"])
    np.testing.assert_allclose(results.embeddings, predictor.embed(["a", "bb bb", "c c c"]), atol=1e-6)
    assert results.probs["intent"].shape == (3, len(INTENTS))


@pytest.mark.parametrize("name, data, expected", [
    ("a.txt", b"first\n\n  second  \r\nthird", ["first", "second", "third"]),
    ("a.csv", b"id,text\n1,hello\n2,\"with, comma\"\n3,\n", ["hello", "with, comma"]),
    ("a.csv", "\ufefftext\nbom ok\n".encode(), ["bom ok"]),
    ("a.txt", "emoji \U0001f600 and \u05e9\u05dc\u05d5\u05dd\n".encode(), ["emoji \U0001f600 and \u05e9\u05dc\u05d5\u05dd"]),
])
def test_parse_sentences(name, data, expected):
    assert parse_table(data, name).texts == expected


def test_parse_table_keeps_the_other_columns_in_their_order():
    table = parse_table("\ufeffid,text,,text\n1,a,x,b\n2,,y,c\n3,=d,z\n".encode(), "a.csv")
    assert table.texts == ["a", "=d"]  # the first `text` column
    assert [r.error for r in table.rows] == [None, "empty", None]  # a row without a text stays, with its error
    assert table.columns == ["id", "column_3", "text"]  # a second `text` is another column (written as input_text)
    assert table.values == [["1", "x", "b"], ["2", "y", "c"], ["3", "z", ""]]
    assert parse_table(b"one\ntwo\n", "a.txt").columns == []


def test_every_line_of_a_txt_is_a_row_with_its_text_or_its_error():
    data = b"\xef\xbb\xbfone\r\n\n  \ncaf\xe9\n" + b"x" * (MAX_ROW_CHARS + 1) + "\nlast\u2028line".encode()
    table = parse_table(data, "a.txt")
    assert table.lines == [1, 2, 3, 4, 5, 6]  # split at \n only, as bulk splits; no line after the final one
    assert [r.error for r in table.rows] == [None, "empty", "empty", "not UTF-8 (bad byte at character 4)",
                                             f"{MAX_ROW_CHARS + 1:,} characters; at most {MAX_ROW_CHARS:,} per row", None]
    assert table.texts == ["one", "last\u2028line"]  # no byte order mark, no \r; U+2028 is no line break
    assert table.rows[3].text == "caf\ufffd"  # the bad byte shown
    assert "4 rows with an error (line 2: empty, line 3: empty, line 4: not UTF-8" in table.error_note()


def test_a_csv_record_with_more_fields_than_the_header_is_an_error_naming_the_extra_field():
    table = parse_table(b"text,label\nhello, world,greeting\n\"hello, world\",greeting\n", "a.csv")
    assert table.rows[0].error == ("3 fields where the header has 2 (extra: 'greeting'); a text that holds a comma "
                                   "must be in double quotes")
    assert table.rows[1].error is None and table.rows[1].text == "hello, world"
    assert table.lines == [2, 3]


@pytest.mark.parametrize("name, data, match", [
    ("a.txt", b"\n \n", "contains no sentences that can be scored (line 1: empty)"),
    ("a.csv", b"sentence\nhello\n", "no `text` column"),
    ("a.txt", b"caf\xe9\n", "not UTF-8"),
    ("a.csv", b"PK\x03\x04\x00\x00binary", "binary"),
    ("a.pdf", b"hello", "unsupported file type"),
])
def test_parse_sentences_errors(name, data, match):
    with pytest.raises(InputError, match=re.escape(match)):
        parse_table(data, name)


# The predict command's columns as documented in the README; the app's results.csv has the same.
DOCUMENTED_COLUMNS = ["text", "truncated", "error", "intent", "intent_score", "sentiment", "sentiment_score",
                      "sentiment_negative", "sentiment_neutral", "sentiment_positive"]


def run_cli(command, *args, env: dict | None = None):
    return subprocess.run([sys.executable, "-m", "mtl_core", command, *map(str, args)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


def test_predict_cli_writes_the_documented_columns(tiny_checkpoint, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text('text,other\n"I love <b>this</b>",x\nmy card is lost,y\n', encoding="utf-8")
    out = tmp_path / "out.csv"
    result = run_cli("predict", "--input", src, "--output", out, "--checkpoint", tiny_checkpoint)
    assert result.returncode == 0, result.stderr
    assert "UNTRAINED" in result.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert list(rows[0]) == ["other", *DOCUMENTED_COLUMNS]  # the input's other column first
    assert [(r["other"], r["text"]) for r in rows] == [("x", "I love <b>this</b>"), ("y", "my card is lost")]
    src = tmp_path / "in.txt"
    src.write_text("I love <b>this</b>\nmy card is lost\n", encoding="utf-8")
    assert run_cli("predict", "--input", src, "--output", out, "--checkpoint", tiny_checkpoint).returncode == 0
    assert list(next(csv.reader(out.open(encoding="utf-8")))) == DOCUMENTED_COLUMNS  # a .txt has no other columns


def test_predict_cli_carries_the_inputs_other_columns_row_by_row(tiny_checkpoint, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("id,text,channel,intent,note,\n"
                   '7,my card is lost,email,card_arrival,=1+2,x\n'
                   "8,,chat,refund,kept,x\n"  # no text: an error row, its other columns kept
                   "\n"  # a blank line is no record
                   '9,"  great app  ",web,,-5,x\n'
                   "10,hello\n", encoding="utf-8")  # a short row: its missing values are empty
    out = tmp_path / "out.csv"
    result = run_cli("predict", "--input", src, "--output", out, "--checkpoint", tiny_checkpoint)
    assert result.returncode == 0, result.stderr
    reader = csv.DictReader(out.open(encoding="utf-8"))
    # in their input order, before the predictions; `intent` would clash with the prediction: input_intent
    assert reader.fieldnames == ["id", "channel", "input_intent", "note", "column_6", *DOCUMENTED_COLUMNS]
    rows = list(reader)
    assert [(r["id"], r["text"], r["channel"], r["input_intent"], r["note"], r["column_6"]) for r in rows] == [
        ("7", "my card is lost", "email", "card_arrival", "'=1+2", "x"),  # a formula stays text here too
        ("8", "", "chat", "refund", "kept", "x"),
        ("9", "great app", "web", "", "'-5", "x"),
        ("10", "hello", "", "", "", "")]
    assert [r["error"] for r in rows] == ["", "empty", "", ""]
    assert [r["intent"] in INTENTS for r in rows] == [True, False, True, True]  # the prediction, not the input's
    assert rows[1]["intent"] == rows[1]["sentiment_score"] == rows[1]["truncated"] == ""  # no prediction


def test_predict_cli_writes_one_row_per_line_with_its_error_or_truncated_flag(tiny_checkpoint, tmp_path):
    lines = ["my card is lost", "", "caf\xe9 au lait", "x" * (MAX_ROW_CHARS + 1),
             " ".join(["word"] * 300), "great app", "   "]
    src, out = tmp_path / "in.txt", tmp_path / "out.csv"
    src.write_bytes("\n".join(lines).encode("latin-1") + b"\n")
    result = run_cli("predict", "--input", src, "--output", out, "--checkpoint", tiny_checkpoint)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == len(lines)  # line N of the input is row N of the output: nothing dropped
    assert [r["error"].split(" (")[0].split(";")[0] for r in rows] == [
        "", "empty", "not UTF-8", f"{MAX_ROW_CHARS + 1:,} characters", "", "", "empty"]
    assert [r["truncated"] for r in rows] == ["0", "", "", "", "1", "0", ""]  # cut at the token limit: said
    assert [bool(r["intent"]) for r in rows] == [True, False, False, False, True, True, False]
    assert "wrote 7 rows" in result.stderr and "3 predictions" in result.stderr and "1 cut at the" in result.stderr
    assert "4 rows with an error (line 2: empty, line 3: not UTF-8" in result.stderr


def test_predict_cli_writes_none_for_an_out_of_scope_sentence_and_its_closest_label(scoped_task_checkpoint, tmp_path):
    checkpoint, inside, outside = scoped_task_checkpoint
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text(f"ticket,text\nA,{inside}\nB,{outside}\n", encoding="utf-8")
    result = run_cli("predict", "--input", src, "--output", out, "--checkpoint", checkpoint)
    assert result.returncode == 0, result.stderr
    reader = csv.DictReader(out.open(encoding="utf-8"))
    assert reader.fieldnames == ["ticket", *DOCUMENTED_COLUMNS, "urgency", "urgency_score", "urgency_urgent",
                                 "urgency_later", "urgency_closest", "urgency_in_scope", "urgency_scope_score"]
    a, b = list(reader)
    assert (a["ticket"], a["urgency_in_scope"], b["ticket"], b["urgency_in_scope"]) == ("A", "1", "B", "0")
    assert a["urgency"] == a["urgency_closest"] in URGENCY
    assert b["urgency"] == "none" and b["urgency_closest"] in URGENCY
    assert float(b["urgency_score"]) == float(b[f"urgency_{b['urgency_closest']}"])  # the closest label's probability


@pytest.fixture(scope="module")
def scoped_task_checkpoint(tiny_checkpoint, tmp_path_factory):
    """The tiny checkpoint plus a task from examples, its out-of-scope threshold set between the scores of two
    sentences: (folder, a sentence in scope, one out of scope)."""
    import json

    from mtl_core.tasks import checkpoint

    predictor = Predictor.load(tiny_checkpoint)
    predictor.add_task("urgency", [t for ex in URGENCY.values() for t in ex],
                       [label for label, ex in URGENCY.items() for _ in ex])
    folder = checkpoint.save(predictor.model, tmp_path_factory.mktemp("scoped_task"), predictor.scopes)
    inside, outside = URGENCY["urgent"][0], "zzqx vortex plumbing haiku"
    scores = predictor.run([inside, outside]).scope_scores["urgency"]
    assert scores[0] > scores[1]  # an example itself is closer to the examples
    config = json.loads((folder / "config.json").read_text())
    head = next(h for h in config["heads"] if h["name"] == "urgency")
    head["scope"]["threshold"] = float(scores[0] + scores[1]) / 2
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder, inside, outside


def test_embed_cli_writes_npy_with_a_nan_row_for_a_row_that_cannot_be_embedded(tiny_backbone_dir, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("one\n\nthree\n")
    out = tmp_path / "out.npy"
    result = run_cli("embed", "--input", src, "--output", out, "--backbone", tiny_backbone_dir)
    assert result.returncode == 0, result.stderr
    vectors = np.load(out)
    assert vectors.shape == (3, 32) and vectors.dtype == np.float32
    assert np.isnan(vectors[1]).all() and np.allclose(np.linalg.norm(vectors[[0, 2]], axis=1), 1, atol=1e-5)
    assert "1 row with an error (line 2: empty): their rows are NaN" in result.stderr


@pytest.mark.parametrize("name, data, match", [
    ("missing.txt", None, "does not exist"),
    ("empty.txt", b"", "contains no sentences"),
    ("blank.txt", b"\n\n", "contains no sentences that can be scored (line 1: empty)"),
    ("notext.csv", b"a,b\n1,2\n", "no `text` column"),
    ("latin1.txt", b"caf\xe9\n", "not UTF-8"),
    ("binary.csv", bytes(range(256)) * 4, "binary"),
])
def test_clis_fail_with_one_line_and_no_traceback(tiny_backbone_dir, tmp_path, name, data, match):
    src = tmp_path / name
    if data is not None:
        src.write_bytes(data)
    for module, extra in [("embed", ["--backbone", tiny_backbone_dir]), ("predict", [])]:
        result = run_cli(module, "--input", src, "--output", tmp_path / "out", *extra)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0]


def test_predict_cli_bad_checkpoint_is_one_line(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("hello\n")
    result = run_cli("predict", "--input", src, "--output", tmp_path / "o.csv", "--checkpoint", tmp_path / "none")
    assert result.returncode == 2 and "Traceback" not in result.stderr and "does not exist" in result.stderr


@pytest.mark.parametrize("module, args, match", [
    ("evaluate", ["--checkpoint", "{tmp}/none"], "does not exist"),
    ("evaluate", ["--checkpoint", "{ckpt}", "--data-dir", "{tmp}/no_data"], "no data folder at"),
    ("evaluate", ["--checkpoint", "{ckpt}", "--data-dir", "{tmp}"], "labels.json not found"),
    ("train", ["--data-dir", "{tmp}/no_data", "--output", "{tmp}/run", "--backbone", "{backbone}"], "no data folder at"),
    ("train", ["--config", "{tmp}/missing.json"], "missing.json"),
])
def test_every_command_shares_the_one_line_error_path(tiny_checkpoint, tiny_backbone_dir, tmp_path, module, args, match):
    values = {"tmp": tmp_path, "ckpt": tiny_checkpoint, "backbone": tiny_backbone_dir}
    result = run_cli(module, *[a.format(**values) for a in args])
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith("error:") and match in result.stderr


@pytest.mark.parametrize("module, args", [
    ("evaluate", ["--checkpoint", "{ckpt}", "--data-dir", "{data}"]),
    ("predict", ["--checkpoint", "{ckpt}", "--input", "{tmp}/in.txt", "--output", "{tmp}/out.csv"]),
    ("train", ["--data-dir", "{data}", "--output", "{tmp}/run", "--epochs", "1"]),
])
def test_every_command_honours_mtl_backbone(tiny_checkpoint, tiny_data_dir, tmp_path, module, args):
    (tmp_path / "in.txt").write_text("hello\n")
    values = {"tmp": tmp_path, "ckpt": tiny_checkpoint, "data": tiny_data_dir}
    result = run_cli(module, *[a.format(**values) for a in args], env={"MTL_BACKBONE": str(tmp_path / "no_backbone")})
    assert result.returncode == 2 and "no_backbone" in result.stderr, result.stderr[-2000:]


@pytest.mark.parametrize("module", ["predict", "embed", "train", "evaluate"])
def test_help_shows_how_the_command_is_run(module):
    result = run_cli(module, "--help")
    assert result.returncode == 0 and result.stdout.startswith(f"usage: python -m mtl_core {module}")


FORMULAS = ["=1+2", "+SUM(A1)", "-2+3", "@cmd", "=HYPERLINK(\"http://x\")"]


def test_csv_downloads_keep_formulas_as_text_and_read_back_unchanged(tiny_checkpoint, tmp_path):
    src = tmp_path / "in.csv"
    with open(src, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["text"], *[[t] for t in FORMULAS + ["a - b", "'quoted"]]])
    out = tmp_path / "out.csv"
    result = run_cli("predict", "--input", src, "--output", out, "--checkpoint", tiny_checkpoint)
    assert result.returncode == 0, result.stderr
    written = [r["text"] for r in csv.DictReader(out.open(encoding="utf-8"))]
    assert written == ["'" + t for t in FORMULAS] + ["a - b", "'quoted"]  # a spreadsheet shows these as text
    assert parse_table(out.read_bytes(), "out.csv").texts == FORMULAS + ["a - b", "'quoted"]  # and reads them back


def test_a_tasks_examples_file_guards_formulas_and_round_trips(tmp_path):
    from mtl_core.serving.inputs import read_examples, write_examples

    texts, labels = FORMULAS, ["=label", "+x", "ok", "@y", "ok"]
    write_examples(texts, labels, tmp_path / "e.csv")
    assert all(row[0].startswith("'") for row in list(csv.reader(open(tmp_path / "e.csv", encoding="utf-8")))[1:])
    assert read_examples(tmp_path / "e.csv") == (texts, labels)
