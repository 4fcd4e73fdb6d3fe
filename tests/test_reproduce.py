"""scripts/reproduce.py: its steps write under runs/ only, resume, and compare numbers as the table says."""
import json

from mtl_core.settings import ROOT
from mtl_core.training.evaluation import default_output
from scripts import reproduce


def test_every_step_writes_under_its_own_folder_never_over_a_committed_file(tmp_path):
    steps = reproduce.quick_steps(tmp_path) + reproduce.full_steps(tmp_path)
    for step in steps:
        assert step.marker(tmp_path).is_relative_to(tmp_path) and step.minutes > 0, step.title
        assert step.output is None or step.output.is_relative_to(tmp_path), step.title
        written = [step.argv[i + 1] for i, a in enumerate(step.argv) if a in ("--out", "--output", "--results-dir")]
        assert all(w.startswith(str(tmp_path)) for w in written), step.argv
    assert [s.title for s in steps][:2] == ["data: every file's SHA-256", "the shipped checkpoint on the test sets (fp32)"]
    assert sum(s.minutes for s in reproduce.full_steps(tmp_path)) > 60  # the sweeps' committed wall times


def test_the_shipped_checkpoint_is_evaluated_under_runs_not_over_its_committed_results(tmp_path):
    shipped = ROOT / "assets" / "checkpoint"
    assert default_output(shipped, "test", "fp32") == ROOT / "runs" / "evaluate" / "checkpoint" / "eval_test"
    assert default_output(shipped, "test", "bf16") == ROOT / "runs" / "evaluate" / "checkpoint" / "eval_test_bf16"
    assert default_output(tmp_path / "mine", "dev", "fp32") == tmp_path / "mine" / "eval_dev"


def test_numbers_are_compared_to_the_committed_file_within_their_tolerance(tmp_path):
    committed, reproduced = tmp_path / "committed.json", tmp_path / "reproduced.json"
    committed.write_text(json.dumps({"tasks": {"intent": {"accuracy": 0.93, "n": 3080}}, "label": "x", "ok": True}))
    reproduced.write_text(json.dumps({"tasks": {"intent": {"accuracy": 0.9300000004, "n": 3079}}}))
    rows = {r.what: r for r in reproduce.same_numbers("m", reproduced, committed)}
    assert set(rows) == {"m tasks.intent.accuracy", "m tasks.intent.n"}  # strings and booleans are not numbers
    assert rows["m tasks.intent.accuracy"].ok and not rows["m tasks.intent.n"].ok
    table = reproduce.table(sorted(rows.values(), key=lambda r: r.ok))
    assert table.splitlines()[2].startswith("| m tasks.intent.n | 3079 | 3080 | -1 | **no**")


def test_a_step_already_done_is_skipped_and_a_finished_step_is_marked_done(tmp_path, capsys):
    done = reproduce.Step("done before", ("no.such.module",), 1)
    done.marker(tmp_path).parent.mkdir(parents=True)
    done.marker(tmp_path).write_text("x")
    reproduce.run_step(done, 1, 2, tmp_path)
    assert "done before" in capsys.readouterr().out
    check = reproduce.Step("a check", ("scripts.check_docs",), 0.1)
    reproduce.run_step(check, 2, 2, tmp_path)
    assert check.marker(tmp_path).read_text().startswith("python -m scripts.check_docs: finished")
    assert check.marker(tmp_path) != done.marker(tmp_path)
