"""Bulk scoring (mtl_core/bulk/job.py, mtl_core/bulk/sources.py): every input row exactly once, the predict command's values,
errors per row, resumption after an interruption; on a local Ray with 2 CPUs and the tiny model."""
import csv
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mtl_core.bulk.job import BulkError, Job, run_job
from mtl_core.bulk.sources import MIN_PART_ROWS, PART_ROWS, input_files, input_schema, part_size, plan, read_part, text_value
from mtl_core.commands import bulk, predict
from mtl_core.errors import InputError
from mtl_core.serving.inputs import MAX_ROW_CHARS, spreadsheet_safe
from mtl_core.serving.predictor import Predictor
from mtl_core.settings import ROOT, Settings
from mtl_core.tasks import checkpoint
from tests.conftest import URGENCY


@pytest.fixture(scope="module")
def checkpoint_with_task(tiny_checkpoint, tmp_path_factory):
    """The tiny checkpoint plus a head fitted on examples (with its out-of-scope detector): a third task."""
    predictor = Predictor.load(tiny_checkpoint)
    texts = [t for examples in URGENCY.values() for t in examples]
    predictor.add_task("urgency", texts, [label for label, ex in URGENCY.items() for _ in ex])
    return checkpoint.save(predictor.model, tmp_path_factory.mktemp("bulk_ckpt"), predictor.scopes)


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def write_inputs(folder):
    """One file of each format, with good rows and rows that cannot be scored; returns {id: error or None}."""
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"my card is lost\n\nI love <b>this</b>\r\n" + b"x" * (MAX_ROW_CHARS + 1)
                                   + b"\ncaf\xe9 au lait\nwhere is my refund")
    (folder / "b.csv").write_text('id,text,channel\n7,"where is my money, please",email\n8,,chat\n'
                                  '9,"two\nlines",chat\n10,=1+2,web\n11,hello, world,chat\n', encoding="utf-8")
    (folder / "c.jsonl").write_text('{"text": "exchange rate?", "lang": "en"}\nnot json\n\n{"text": null, "lang": "de"}\n'
                                    '[1, 2]\n{"text": "top up", "lang": 5, "later": "not a column"}\n')
    texts = ["top up failed", None, "refund please", "  ", "card frozen", "hello there"]
    pq.write_table(pa.table({"n": list(range(1, 7)), "text": texts}), folder / "d.parquet", row_group_size=2)
    a, b, c, d = (str(folder / n) for n in ("a.txt", "b.csv", "c.jsonl", "d.parquet"))
    return {f"{a}:1": None, f"{a}:2": "empty", f"{a}:3": None, f"{a}:4": "characters", f"{a}:5": "not UTF-8",
            f"{a}:6": None,
            f"{b}:1": None, f"{b}:2": "empty", f"{b}:3": None, f"{b}:4": None, f"{b}:5": "4 fields where the header has 3",
            f"{c}:1": None, f"{c}:2": "not a JSON object", f"{c}:3": "empty", f"{c}:4": "empty",
            f"{c}:5": "not a JSON object", f"{c}:6": None,
            **{f"{d}:{i}": (None if t and t.strip() else "empty") for i, t in enumerate(texts, 1)}}


def output_rows(folder) -> list[dict]:
    return pq.read_table(folder).to_pylist() if list(folder.glob("*.parquet")) else []


def sorted_by_id(folder) -> list[dict]:
    return sorted(output_rows(folder), key=lambda r: r["id"])


def shown(value) -> str:
    """A Parquet value as the predict command's CSV writes it: formulas guarded, nothing for a null."""
    return "" if value is None else str(spreadsheet_safe(value))


def job_for(inputs, ckpt, part_rows=2, **kwargs) -> Job:
    return Job([str(p) for p in inputs], checkpoint=str(ckpt), part_rows=part_rows, **kwargs)


FP32 = Settings(precision="fp32")


# ---- input side, no Ray -------------------------------------------------------------------------------

def test_parts_are_cut_at_the_same_rows_every_time_and_read_back_every_row_once(tmp_path):
    expected = write_inputs(tmp_path / "in")
    files = input_files([str(tmp_path / "in")])
    assert [os.path.basename(f) for f in files] == ["a.txt", "b.csv", "c.jsonl", "d.parquet"]
    parts = plan(files, "text", None, part_rows=2)
    assert parts == plan(files, "text", None, part_rows=2)
    assert len({p.output_name for p in parts}) == len(parts)
    rows = [r for p in parts for r in read_part(p, "text", None)]
    assert [r.id for r in rows] == list(expected)
    for r in rows:
        want = expected[r.id]
        assert (r.row.error is None) if want is None else (want in r.row.error), (r, want)
    texts = {r.id: r.row.text for r in rows}
    assert texts[files[1] + ":3"] == "two\nlines"  # a quoted newline stays in its record and its part
    assert texts[files[0] + ":5"] == "caf\ufffd au lait"  # an undecodable byte is shown, not dropped
    values = {r.id: r.values for r in rows}  # each row's other columns, bad rows too
    assert [p.columns for p in parts if p.index == 0] == [(), ("id", "channel"), ("lang",), ("n",)]
    assert values[files[1] + ":5"] == {"id": "11", "channel": " world"}  # a record too long: an error, as predict says
    assert values[files[1] + ":2"] == {"id": "8", "channel": "chat"}  # an empty text
    assert values[files[2] + ":4"] == {"lang": "de"} and values[files[2] + ":6"] == {"lang": 5}  # `later`: not a column
    assert values[files[2] + ":2"] == {} and values[files[3] + ":2"] == {"n": 2}
    schema = input_schema(parts)  # one type per column for every part's file
    assert list(zip(schema.names, schema.types)) == [("id", pa.string()), ("channel", pa.string()),
                                                      ("lang", pa.string()), ("n", pa.int64())]


def test_other_columns_of_csv_and_parquet_files(tmp_path):
    (tmp_path / "t.csv").write_bytes(b"ticket,text,note,,note\nT-1,hello,a,b,c\nT-2,hi,caf\xe9\n")
    parts = plan([str(tmp_path / "t.csv")], "text", "ticket")
    assert parts[0].columns == ("note", "column_4", "input_note")  # the id column is `id`; a name twice: prefixed
    rows = read_part(parts[0], "text", "ticket")
    assert [r.values for r in rows] == [{"note": "a", "column_4": "b", "input_note": "c"},
                                        {"note": "caf\ufffd", "column_4": "", "input_note": ""}]
    assert text_value(5) == "5" and text_value(True) == "true" and text_value({"a": [1]}) == '{"a": [1]}'
    pq.write_table(pa.table({"text": ["a"], "n": [1.5], "tag": [None]}), tmp_path / "x.parquet")
    pq.write_table(pa.table({"text": ["b"], "n": [2], "tag": ["t"]}), tmp_path / "y.parquet")
    schema = input_schema(plan([str(tmp_path / "x.parquet"), str(tmp_path / "y.parquet")], "text", None))
    # the files disagree on n (double, int64): text; an all-null column agrees with any type
    assert list(zip(schema.names, schema.types)) == [("n", pa.string()), ("tag", pa.string())]


def test_the_input_id_column_is_used(tmp_path):
    (tmp_path / "t.csv").write_text("ticket,text\nT-1,hello\n,no id\n", encoding="utf-8")
    rows = [r for p in plan([str(tmp_path / "t.csv")], "text", "ticket") for r in read_part(p, "text", "ticket")]
    assert [r.id for r in rows] == ["T-1", f"{tmp_path / 't.csv'}:2"]  # a row without one gets FILE:ROW


@pytest.mark.parametrize("files, make, columns, match", [
    (["missing.csv"], {}, ("text", None), "does not exist"),
    (["t.csv"], {"t.csv": "sentence\nhi\n"}, ("text", None), "no `text` column"),
    (["t.csv"], {"t.csv": "text\nhi\n"}, ("text", "ticket"), "no `ticket` column"),
    (["t.jsonl"], {"t.jsonl": '{"body": "hi"}\n'}, ("text", None), "no `text` column"),
    (["t.pdf"], {"t.pdf": "hi"}, ("text", None), "unsupported file type"),
    (["empty"], {"empty/x.pdf": "hi"}, ("text", None), "no .txt/.csv/.jsonl/.parquet files"),
    (["*.nothing"], {}, ("text", None), "match"),
])
def test_input_errors_name_the_problem(tmp_path, files, make, columns, match):
    for name, text in make.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    with pytest.raises(InputError, match=match):
        plan(input_files([str(tmp_path / f) for f in files]), *columns)


def test_a_glob_selects_files(tmp_path):
    for name in ("x1.txt", "x2.txt", "y.txt"):
        (tmp_path / name).write_text("hi\n")
    assert [os.path.basename(f) for f in input_files([str(tmp_path / "x*.txt")])] == ["x1.txt", "x2.txt"]


# ---- the job on a local Ray ----------------------------------------------------------------------------

def test_bulk_scores_every_row_once_with_the_predict_commands_values(local_ray, checkpoint_with_task, tmp_path,
                                                                     monkeypatch):
    expected = write_inputs(tmp_path / "in")
    summary = run_job(job_for([tmp_path / "in"], checkpoint_with_task), str(tmp_path / "out"), FP32,
                      show_progress=False)
    rows = output_rows(tmp_path / "out")
    assert sorted(r["id"] for r in rows) == sorted(expected)  # each input row exactly once
    assert summary.rows_read == summary.rows_written == len(expected)
    assert summary.rows_failed == sum(e is not None for e in expected.values())
    for r in rows:
        want = expected[r["id"]]
        assert (r["error"] is None) if want is None else (want in r["error"]), r

    carried = ["input_id", "channel", "lang", "n"]  # the inputs' other columns; b.csv's `id` would clash with ours
    by_id = {r["id"]: r for r in rows}
    b, c, d = (str(tmp_path / "in" / n) for n in ("b.csv", "c.jsonl", "d.parquet"))
    assert [by_id[f"{b}:{i}"]["input_id"] for i in (1, 2)] == ["7", "8"] and by_id[f"{b}:2"]["channel"] == "chat"
    assert by_id[f"{c}:4"]["lang"] == "de" and by_id[f"{c}:6"]["lang"] == "5"  # a JSON number as text
    assert by_id[f"{d}:2"]["n"] == 2 and by_id[f"{d}:2"]["error"] == "empty"  # a bad row keeps its columns
    assert pq.read_schema(next((tmp_path / "out").glob("d-*.parquet"))).field("n").type == pa.int64()

    good = [r for r in rows if r["error"] is None]
    with open(tmp_path / "sentences.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([[*carried, "text"]] + [[shown(r[k]) for k in [*carried, "text"]] for r in good])
    monkeypatch.setenv("MTL_PRECISION", "fp32")  # as the job above: the same numbers to the last digit
    assert predict.main(["--input", str(tmp_path / "sentences.csv"), "--output", str(tmp_path / "p.csv"),
                         "--checkpoint", str(checkpoint_with_task)]) == 0
    predicted = list(csv.DictReader(open(tmp_path / "p.csv", encoding="utf-8")))
    columns = list(predicted[0])
    assert columns[:8] == [*carried, "text", "truncated", "error", "intent"]
    assert "urgency" in columns and "urgency_in_scope" in columns
    assert list(rows[0]) == ["id", *columns]  # the predict command's columns after the id
    for r, p in zip(sorted(good, key=lambda r: r["text"]), sorted(predicted, key=lambda p: p["text"]), strict=True):
        assert {k: shown(r[k]) for k in columns} == p  # the CSV guards formulas, Parquet needs not

    # out of scope for the task's detector: `none`, the closest label in its own column
    assert {r["urgency_in_scope"] for r in good} == {0, 1}
    for r in good:
        assert r["urgency_closest"] in URGENCY and r["urgency_score"] == r[f"urgency_{r['urgency_closest']}"]
        assert r["urgency"] == (r["urgency_closest"] if r["urgency_in_scope"] else "none")


def test_embeddings_are_the_predictors(local_ray, tiny_checkpoint, tmp_path):
    (tmp_path / "s.txt").write_text("one\ntwo two\nthree three three\n")
    run_job(job_for([tmp_path / "s.txt"], tiny_checkpoint, embeddings=True), str(tmp_path / "out"), FP32,
            show_progress=False)
    table = pq.read_table(tmp_path / "out")
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 32)
    vectors = np.array(table.column("embedding").to_pylist())
    expected = Predictor.load(tiny_checkpoint).embed(table.column("text").to_pylist())
    np.testing.assert_allclose(vectors, expected, atol=1e-5)


def test_a_rerun_scores_only_the_missing_parts_and_ends_with_the_same_rows(local_ray, tiny_checkpoint, tmp_path):
    write_inputs(tmp_path / "in")
    job = job_for([tmp_path / "in"], tiny_checkpoint)
    run_job(job, str(tmp_path / "whole"), FP32, show_progress=False)
    out = tmp_path / "resumed"
    first = run_job(job, str(out), FP32, show_progress=False)
    lost = sorted(out.glob("*.parquet"))[1:4]  # as if the job had stopped before writing these parts
    lost_rows = sum(pq.ParquetFile(p).metadata.num_rows for p in lost)
    for path in lost:
        path.unlink()
    (out / ".b-00000000-00003.parquet.1234.tmp").write_bytes(b"half a file")  # a write cut short
    again = run_job(job, str(out), FP32, show_progress=False)
    assert (again.parts_scored, again.parts_skipped) == (3, first.parts_scored - 3)
    assert again.rows_read == lost_rows and again.rows_written == first.rows_written
    assert sorted_by_id(out) == sorted_by_id(tmp_path / "whole")
    assert run_job(job, str(out), FP32, show_progress=False).rows_read == 0  # all done: nothing scored


def test_another_job_in_the_same_output_is_refused(local_ray, tiny_checkpoint, tmp_path):
    (tmp_path / "s.txt").write_text("one\n")
    run_job(job_for([tmp_path / "s.txt"], tiny_checkpoint), str(tmp_path / "out"), FP32, show_progress=False)
    with pytest.raises(BulkError, match="another job"):
        run_job(job_for([tmp_path / "s.txt"], tiny_checkpoint, embeddings=True), str(tmp_path / "out"), FP32)


def test_parts_are_sized_so_that_every_actor_gets_several():
    assert part_size(20_000, 2) == 2_500  # not 2 parts of 10,000, which a stop half-way would both lose
    assert part_size(10_000_000, 2) == PART_ROWS
    assert part_size(100, 16) == MIN_PART_ROWS  # a part's file and scheduling cost ~the same at any size


def test_a_job_sized_at_its_first_run_keeps_its_part_size_when_resumed(local_ray, tiny_checkpoint, tmp_path):
    (tmp_path / "s.txt").write_text("".join(f"sentence {i}\n" for i in range(1_200)))
    job, out = job_for([tmp_path / "s.txt"], tiny_checkpoint, part_rows=None), tmp_path / "out"
    first = run_job(job, str(out), FP32, show_progress=False)
    assert first.part_rows == part_size(1_200, 2) == MIN_PART_ROWS and first.parts_scored == 3
    assert '"part_rows": 500' in (out / "_job.json").read_text()
    lost = sorted(out.glob("*.parquet"))[-1]
    lost.unlink()
    again = run_job(job, str(out), FP32, actors=1, show_progress=False)  # other actors: the same parts
    assert (again.parts_scored, again.parts_skipped, again.rows_read) == (1, 2, 200)
    assert len(output_rows(out)) == 1_200


def test_predict_and_bulk_give_the_same_row_by_row_at_their_default_precision(local_ray, tiny_checkpoint, tmp_path,
                                                                            monkeypatch):
    monkeypatch.delenv("MTL_PRECISION", raising=False)  # both commands as a user runs them
    lines = [f"{w} my card {i}" for i, w in enumerate(["where is", "I lost", "top up", "refund"] * 10)]
    lines[3:3] = ["", "x" * (MAX_ROW_CHARS + 1), " ".join(["transfer my money"] * 120), "caf\udce9"]
    src = tmp_path / "s.txt"
    src.write_bytes("\n".join(lines).encode("utf-8", errors="surrogateescape") + b"\n")
    args = ["--input", str(src), "--checkpoint", str(tiny_checkpoint)]
    assert predict.main([*args, "--output", str(tmp_path / "p.csv")]) == 0
    assert bulk.main([*args, "--output", str(tmp_path / "out")]) == 0
    predicted = list(csv.DictReader(open(tmp_path / "p.csv", encoding="utf-8")))
    scored = sorted(output_rows(tmp_path / "out"), key=lambda r: int(r["id"].rsplit(":", 1)[1]))
    assert len(predicted) == len(scored) == len(lines)
    columns = ["text", "truncated", "error", "intent", "sentiment", "intent_score"]
    assert [{k: p[k] for k in columns} for p in predicted] == [{k: shown(r[k]) for k in columns} for r in scored]
    assert [p["error"] != "" for p in predicted].count(True) == 3 and "1" in [p["truncated"] for p in predicted]


# ---- the command ---------------------------------------------------------------------------------------

def run_bulk(*args) -> subprocess.Popen:
    env = {**os.environ, "MTL_PRECISION": "fp32"}
    # A command started in the background by a non-interactive shell (as CI may run the tests) inherits
    # SIGINT ignored, and Python then never turns Ctrl-C into KeyboardInterrupt: give it the default back.
    return subprocess.Popen([sys.executable, "-m", "mtl_core", "bulk", *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def finish(job: subprocess.Popen, timeout_s: float) -> str:
    """The job's stderr once it exits; killed (and the test failed) when it runs past timeout_s."""
    try:
        return job.communicate(timeout=timeout_s)[1]
    except subprocess.TimeoutExpired:
        job.kill()
        job.communicate()
        raise


def test_a_job_stopped_with_ctrl_c_resumes_to_every_row_exactly_once(tiny_checkpoint, tmp_path):
    # 100 parts of 1,000 rows: tens of seconds even for the tiny model, so the stop lands mid-job
    lines = [f"sentence number {i} about my card" for i in range(100_000)]
    (tmp_path / "s.txt").write_text("\n".join(lines) + "\n")
    args = ["--input", tmp_path / "s.txt", "--output", tmp_path / "out", "--checkpoint", tiny_checkpoint,
            "--part-rows", 1000, "--actors", 1]
    job = run_bulk(*args)
    deadline = time.monotonic() + 120
    while len(list((tmp_path / "out").glob("*.parquet"))) < 2 and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.05)
    job.send_signal(signal.SIGINT)
    stderr = finish(job, 60)
    written = len(list((tmp_path / "out").glob("*.parquet")))
    assert job.returncode == 130 and 2 <= written < 100, (job.returncode, written, stderr[-2000:])
    assert "run the same command again" in stderr
    stderr = finish(run_bulk(*args), 300)
    ids = [r["id"] for r in output_rows(tmp_path / "out")]
    assert len(ids) == len(set(ids)) == len(lines), stderr[-2000:]
    skipped = re.search(r"(\d+) part\(s\) already done", stderr)
    assert skipped and int(skipped.group(1)) >= written, stderr[-2000:]  # an actor may finish one more on its way out


@pytest.mark.parametrize("args, match", [
    (["--input", "{tmp}/missing.txt"], "does not exist"),
    (["--input", "{tmp}/s.csv", "--text-column", "body"], "no `body` column"),
    (["--input", "{tmp}/s.csv", "--checkpoint", "{tmp}/nothing"], "does not exist"),
    (["--input", "{tmp}/s.csv", "--address", "127.0.0.1:9"], "cannot reach a Ray cluster at 127.0.0.1:9"),
])
def test_errors_are_one_line_with_exit_code_2(tiny_checkpoint, tmp_path, args, match):
    (tmp_path / "s.csv").write_text("text\nhello\n")
    job = run_bulk(*[a.format(tmp=tmp_path) for a in args], "--output", tmp_path / "out",
                   *([] if "--checkpoint" in args else ["--checkpoint", tiny_checkpoint]))
    stderr = finish(job, 120)
    assert job.returncode == 2 and "Traceback" not in stderr, stderr[-2000:]
    assert stderr.strip().splitlines()[-1].startswith("error:") and match in stderr


def test_the_app_never_imports_ray():
    code = "import sys, app, ui.events; assert 'ray' not in sys.modules, 'ray imported'"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_help_shows_how_the_command_is_run():
    done = subprocess.run([sys.executable, "-m", "mtl_core", "bulk", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("usage: python -m mtl_core bulk")
