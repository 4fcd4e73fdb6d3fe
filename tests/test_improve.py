"""Improving a task (mtl_core/tasks/improve.py) on the tiny random model: its own trained copy of the top layers,
the backbone untouched, saved and reloaded with the same predictions, run in the same pass for a session, cached
apart, explained; the command's --improve, its errors and Ctrl-C leaving the output as it was."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mtl_core.commands import add_task as add_task_command
from mtl_core.errors import InputError
from mtl_core.serving.inputs import write_examples
from mtl_core.serving.predictor import Predictor, SentenceCache
from mtl_core.tasks import checkpoint, improve
from mtl_core.tasks.improve import ImproveSettings, supervised_contrastive_loss

from conftest import URGENCY
from test_predict_cli import run_cli

TEXTS = [t for ts in URGENCY.values() for t in ts]
LABELS = [label for label, ts in URGENCY.items() for _ in ts]
SENTENCES = ["my card was stolen an hour ago", "do you open on sundays", "hello"]
FEW_STEPS = ImproveSettings(steps=12, labels_per_batch=2, examples_per_label=3)


def backbone_state(predictor: Predictor) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in predictor.encoder.state_dict().items()}


def test_the_contrastive_loss_is_lower_when_labels_cluster():
    y = torch.tensor([0, 0, 1, 1])
    together = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1], [1.0, -0.1], [-1.0, 0.1], [-1.0, -0.1]]), dim=1)
    apart = together[[0, 2, 1, 3]]
    assert supervised_contrastive_loss(together, y, 0.1) < supervised_contrastive_loss(apart, y, 0.1)


def test_an_improved_task_trains_its_own_layers_and_leaves_the_backbone_alone(tiny_checkpoint):
    predictor = Predictor.load(tiny_checkpoint)
    before = backbone_state(predictor)
    steps = []
    task = predictor.example_task("urgency", TEXTS, LABELS, improve=FEW_STEPS, progress=lambda d, t: steps.append((d, t)))
    assert task.improved and task.config.reads == "own layers" and task.config.params["layers"] == 2
    assert steps == [(i, FEW_STEPS.steps) for i in range(1, FEW_STEPS.steps + 1)]
    assert task.report.improved["steps"] == FEW_STEPS.steps and task.report.improved["layers"] == 2
    assert "improved: its own copy of the top 2 encoder layers" in "\n".join(task.report.lines())
    for k, v in backbone_state(predictor).items():
        assert torch.equal(v, before[k]), k
    trained = dict(task.head.layers.named_parameters())
    original = dict(predictor.encoder.layers.named_parameters())
    assert any(not torch.equal(trained[k], original[k]) for k in trained)  # its copy moved
    assert predictor.tasks == ["intent", "sentiment"]  # a session's task is not added to the shared model


def test_an_improved_task_saved_and_reloaded_gives_the_same_predictions(tiny_checkpoint, tmp_path):
    predictor = Predictor.load(tiny_checkpoint)
    predictor.add_task("urgency", TEXTS, LABELS, improve=FEW_STEPS)
    before = predictor.run(SENTENCES)
    checkpoint.save(predictor.model, tmp_path / "ckpt", predictor.scopes)
    reloaded = Predictor.load(tmp_path / "ckpt")
    after = reloaded.run(SENTENCES)
    assert reloaded.tasks == ["intent", "sentiment", "urgency"]
    assert reloaded.model.config.head("urgency").reads == "own layers"
    for task in before.probs:
        np.testing.assert_allclose(after.probs[task], before.probs[task], atol=1e-6)
    np.testing.assert_allclose(after.scope_scores["urgency"], before.scope_scores["urgency"], atol=1e-6)
    np.testing.assert_allclose(after.vectors("urgency"), before.vectors("urgency"), atol=1e-6)
    assert not np.allclose(after.vectors("urgency"), after.embeddings)  # it reads its own layers' output


def test_a_session_task_that_is_improved_runs_in_the_pass_and_is_cached_apart(tiny_checkpoint, monkeypatch):
    predictor = Predictor.load(tiny_checkpoint)
    predictor.cache = SentenceCache()
    task = predictor.example_task("urgency", TEXTS, LABELS, improve=FEW_STEPS)
    plain = predictor.run(SENTENCES)
    with_task = predictor.run(SENTENCES, extra=task)
    assert "urgency" not in plain.probs and with_task.probs["urgency"].shape == (3, 2)
    np.testing.assert_allclose(with_task.embeddings, plain.embeddings, atol=1e-6)
    np.testing.assert_allclose(with_task.probs["urgency"],
                               task.probabilities(with_task.vectors("urgency")), atol=1e-5)
    with pytest.raises(ValueError, match="run it in the pass"):
        plain.with_example_task(task)
    forward = Predictor._forward

    def cached_only(self, texts, *args):
        assert texts == [], "both passes were cached"
        return forward(self, texts, *args)
    monkeypatch.setattr(Predictor, "_forward", cached_only)
    np.testing.assert_array_equal(predictor.run(SENTENCES, extra=task).probs["urgency"], with_task.probs["urgency"])
    assert "urgency" not in predictor.run(SENTENCES).probs


def test_an_improved_task_is_explained_through_its_own_layers(tiny_checkpoint):
    predictor = Predictor.load(tiny_checkpoint)
    task = predictor.example_task("urgency", TEXTS, LABELS, improve=FEW_STEPS)
    [found] = predictor.explain([SENTENCES[0]], "urgency", extra=task)
    assert found.label in URGENCY and len(found.words) == len(SENTENCES[0].split())
    model = predictor.model.with_head(task.config, task.head)
    batch = predictor.encoder.tokenize([SENTENCES[0]])
    embeddings = predictor.encoder.bert.embeddings(input_ids=batch["input_ids"])
    with torch.inference_mode():
        direct = model.logits_from_embeddings(embeddings, batch["attention_mask"], "urgency")
        np.testing.assert_allclose(direct.numpy(), model(**batch).logits["urgency"].numpy(), atol=1e-5)


def test_bad_examples_are_refused_before_any_training(tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(improve, "train_layers", lambda *a, **k: pytest.fail("trained on unusable examples"))
    with pytest.raises(InputError, match="at least 2 labels"):
        Predictor.load(tiny_checkpoint).example_task("urgency", TEXTS[:3], ["urgent"] * 3, improve=FEW_STEPS)


# ---- the command ------------------------------------------------------------------------------------------

@pytest.fixture()
def examples_csv(tmp_path):
    path = tmp_path / "urgency.csv"
    write_examples(TEXTS, LABELS, path)
    return path


def test_add_task_improve_writes_a_checkpoint_that_predict_serves(tiny_checkpoint, examples_csv, tmp_path):
    out = tmp_path / "improved"
    result = run_cli("add_task", "--examples", examples_csv, "--name", "urgency", "--output", out,
                     "--checkpoint", tiny_checkpoint, "--improve")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "improved: its own copy of the top 2 encoder layers" in result.stdout
    assert "improve: contrastive steps" in result.stderr  # the progress bar
    assert Predictor.load(out).model.config.head("urgency").reads == "own layers"
    sentences = tmp_path / "in.txt"
    sentences.write_text("\n".join(SENTENCES) + "\n")
    predicted = run_cli("predict", "--input", sentences, "--output", tmp_path / "out.csv", "--checkpoint", out)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    header = (tmp_path / "out.csv").read_text().splitlines()[0].split(",")
    assert "urgency" in header and "urgency_in_scope" in header


def test_add_task_improve_with_bad_examples_is_a_one_line_error(tiny_checkpoint, tmp_path):
    path = tmp_path / "one_label.csv"
    write_examples(TEXTS[:4], ["urgent"] * 4, path)
    result = run_cli("add_task", "--examples", path, "--name", "urgency", "--output", tmp_path / "out",
                     "--checkpoint", tiny_checkpoint, "--improve")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error:") and "at least 2 labels" in result.stderr
    assert not (tmp_path / "out").exists()


def test_ctrl_c_while_improving_leaves_an_earlier_output_as_it_was(tiny_checkpoint, examples_csv, tmp_path,
                                                                   monkeypatch, capsys):
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "config.json").write_text("an earlier checkpoint\n")

    def interrupted(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt
    original_train = improve.train_layers
    monkeypatch.setattr(improve, "train_layers",
                        lambda encoder, cache, y, settings, seed=0, progress=None:
                        original_train(encoder, cache, y, settings, seed, interrupted))
    code = add_task_command.main(["--examples", str(examples_csv), "--name", "urgency", "--output", str(out),
                                  "--checkpoint", str(tiny_checkpoint), "--improve"])
    assert code == 130 and "was not written" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir() if p.name != examples_csv.name] == ["ckpt"]  # no partial folder
    assert [p.name for p in out.iterdir()] == ["config.json"]
    assert (out / "config.json").read_text() == "an earlier checkpoint\n"


def test_ctrl_c_while_writing_removes_the_partial_folder(tmp_path):
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "kept.txt").write_text("earlier\n")
    with pytest.raises(KeyboardInterrupt), checkpoint.writing(out) as folder:
        (folder / "config.json").write_text("half\n")
        raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"] and (out / "kept.txt").read_text() == "earlier\n"
    with checkpoint.writing(out) as folder:
        (folder / "config.json").write_text("new\n")
    assert [p.name for p in out.iterdir()] == ["config.json"] and [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_examples_too_long_to_cache_are_refused_with_the_limit(tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(improve, "MAX_CACHED_TOKENS", 20)
    with pytest.raises(InputError, match="improving keeps at most 20 in memory"):
        Predictor.load(tiny_checkpoint).example_task("urgency", TEXTS, LABELS, improve=FEW_STEPS)
