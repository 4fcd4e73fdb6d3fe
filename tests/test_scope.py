"""Out of scope: each scorer against a direct computation, the detector stored and reloaded exactly, old
checkpoints without one, and the decision in every output (API record, CSV, table)."""
import numpy as np
import pytest
from scipy.special import logsumexp, softmax

from mtl_core.tasks import scope


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_msp_and_energy(rng):
    logits = rng.normal(size=(5, 7)) * 4
    assert np.allclose(scope.msp(softmax(logits, axis=1)), softmax(logits, axis=1).max(axis=1))
    for t in (1.0, 1.6):
        assert np.allclose(scope.energy(logits, t), t * logsumexp(logits / t, axis=1))


def test_knn_similarity(rng):
    ref, x = unit(rng.normal(size=(50, 8))), unit(rng.normal(size=(9, 8)))
    sims = x @ ref.T
    for k in (1, 10, 50):
        expected = np.sort(sims, axis=1)[:, -k:].mean(axis=1)
        assert np.allclose(scope.knn_similarity(x, ref, k, chunk=4), expected, atol=1e-6)
    assert np.allclose(scope.knn_similarity(ref[:3], ref, 1), 1.0, atol=1e-6)  # a reference row finds itself


def test_mahalanobis(rng):
    labels = np.repeat([0, 1, 2], 40)
    x = rng.normal(size=(120, 4)) + labels[:, None] * 3.0
    means, precision = scope.fit_mahalanobis(x, labels, shrinkage=0.1)
    q = rng.normal(size=(6, 4))
    direct = np.array([[(v - m) @ precision @ (v - m) for m in means] for v in q])
    assert np.allclose(scope.mahalanobis_score(q, means, precision), -direct.min(axis=1))
    assert scope.mahalanobis_score(means[:1], means, precision)[0] == pytest.approx(0.0, abs=1e-9)


def test_threshold_and_metrics():
    ins, outs = np.arange(100.0), np.arange(-50.0, 10.0)
    t = scope.threshold_at_recall(ins, 0.95)
    assert (ins >= t).mean() == pytest.approx(0.95)
    m = scope.ood_metrics(ins, outs, t)
    assert m["false_rejection"] == pytest.approx(0.05)
    assert m["oos_recall"] == pytest.approx(55 / 60)  # outs 5..9 reach the threshold 5
    assert m["fpr_at_95"] == pytest.approx(5 / 60) and 0.95 < m["auroc"] < 1.0


# ---- the detector in a checkpoint --------------------------------------------------------------------

@pytest.fixture(scope="module")
def scoped_checkpoint(tiny_checkpoint, tmp_path_factory):
    """The tiny checkpoint with a k-NN detector whose references are the tiny data's intent sentences."""
    import shutil

    from mtl_core.serving.predictor import Predictor
    from mtl_core.tasks import checkpoint

    from conftest import INTENT_ROWS

    folder = tmp_path_factory.mktemp("scoped") / "ckpt"
    shutil.copytree(tiny_checkpoint, folder)
    predictor = Predictor.load(folder)
    texts = [t for rows in INTENT_ROWS.values() for t in rows]
    labels = [label for label, rows in INTENT_ROWS.items() for _ in rows]
    detector = scope.ScopeDetector.fit_knn(predictor.embed(texts), texts, labels, predictor.embed(texts[::2]), "tiny",
                                           "intent")
    config = checkpoint.read_config(folder)
    config.head("intent").scope = detector.save(folder)
    checkpoint.write_config(config, folder)
    return folder


def test_the_threshold_and_references_reload_bit_exactly(scoped_checkpoint):
    import json

    from mtl_core.serving.predictor import Predictor

    stored = json.loads((scoped_checkpoint / "config.json").read_text())["heads"][0]["scope"]
    detector = Predictor.load(scoped_checkpoint).scopes["intent"]
    assert detector.config.threshold == stored["threshold"]  # JSON keeps every bit of a float64
    reloaded = Predictor.load(scoped_checkpoint).scopes["intent"]
    assert np.array_equal(detector.reference, reloaded.reference) and detector.texts == reloaded.texts
    # the stored threshold is the fp16-stored references' own dev score at DEV_RECALL: refitting agrees
    assert detector.config.k == scope.KNN_K and detector.config.dev_recall == scope.DEV_RECALL


def test_every_output_carries_the_decision(scoped_checkpoint, tmp_path):
    import csv

    from mtl_core.serving.predictor import Predictor
    from mtl_core.serving.records import csv_columns, write_csv

    predictor = Predictor.load(scoped_checkpoint)
    known, unknown = predictor.scopes["intent"].texts[0], "zzqx vortex plumbing haiku"
    found = predictor.predict([known, unknown])
    scores = predictor.scopes["intent"].scores(predictor.embed([known, unknown]))
    assert found[0]["intent"].scope_score == pytest.approx(float(scores[0]))
    for p in found:
        assert p["intent"].in_scope == (p["intent"].scope_score >= predictor.scopes["intent"].config.threshold)
        assert p["sentiment"].in_scope is None  # the sentiment head answers for every sentence
    record = found[0].to_api()
    assert set(record["intent"]) >= {"in_scope", "scope_score"} and "in_scope" not in record["sentiment"]
    path = tmp_path / "out.csv"
    write_csv(found, predictor.labels, path, predictor.scoped_heads)
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert list(rows[0]) == csv_columns(predictor.labels, ["intent"])
    assert list(rows[0])[-3:] == ["intent_closest", "intent_in_scope", "intent_scope_score"]
    assert [r["intent_in_scope"] for r in rows] == [str(int(p["intent"].in_scope)) for p in found]
    assert [r["intent_closest"] for r in rows] == [p["intent"].label for p in found]
    assert [r["intent"] for r in rows] == [p["intent"].label if p["intent"].in_scope else "none" for p in found]


def test_a_rejected_sentence_reads_as_none_in_the_table():
    from mtl_core.serving.records import Prediction, TaskPrediction

    rejected = TaskPrediction("card_arrival", 0.4, {"card_arrival": 0.4, "age_limit": 0.6}, False, 0.2)
    row = Prediction("I love pizza.", {"intent": rejected}, False).table_row(1)
    assert row[2] == "— none (closest: Card arrival)"


def test_an_old_checkpoint_without_a_scope_section_loads_without_a_decision(tiny_checkpoint, tmp_path):
    from mtl_core.serving.predictor import Predictor

    predictor = Predictor.load(tiny_checkpoint)
    assert predictor.scopes == {} and predictor.scoped_heads == []
    record = predictor.predict(["where is my card"])[0].to_api()
    assert "in_scope" not in record["intent"]


def test_broken_scope_files_are_a_clear_checkpoint_error(scoped_checkpoint, tmp_path):
    import shutil

    from mtl_core.serving.predictor import Predictor
    from mtl_core.tasks.checkpoint import CheckpointError

    broken = tmp_path / "broken"
    shutil.copytree(scoped_checkpoint, broken)
    (broken / "scope.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="out-of-scope files"):
        Predictor.load(broken)


def test_predict_cli_adds_the_scope_columns_at_the_end(scoped_checkpoint, tmp_path):
    import csv
    import subprocess
    import sys

    from test_predict_cli import DOCUMENTED_COLUMNS

    src, out = tmp_path / "in.txt", tmp_path / "out.csv"
    src.write_text("my card has not arrived\nI love pizza\n")
    result = subprocess.run([sys.executable, "-m", "mtl_core", "predict", "--input", str(src), "--output", str(out),
                             "--checkpoint", str(scoped_checkpoint)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    header = list(csv.DictReader(out.open(encoding="utf-8")).fieldnames)
    assert header == DOCUMENTED_COLUMNS + ["intent_closest", "intent_in_scope", "intent_scope_score"]
