"""A task from labelled examples (mtl_core/tasks/fewshot.py) on the tiny random model and on synthetic embeddings:
the method chosen by cross-validation, every candidate head saved and reloaded exactly, a session's task kept
out of the shared model, explanations, the scope threshold and every bad input with its message."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from mtl_core.errors import InputError
from mtl_core.serving.inputs import examples_from_csv, examples_from_lines, write_examples
from mtl_core.serving.predictor import Predictor, Results
from mtl_core.serving.records import csv_columns, predictions, write_csv
from mtl_core.tasks import checkpoint, fewshot
from mtl_core.tasks.fewshot import MAX_EXAMPLES, MAX_LABELS, TEMPERATURES, fit_task, label_text
from ui.texts import table_headers

DIM = 32
LABELS = ["billing", "delivery", "security", "praise"]
PER_LABEL = 8
SENTENCES = ["where is my parcel", "I was charged twice", "great app", "someone stole my phone"]
# a few labelled examples for the tiny model (its random embeddings separate nothing: these test plumbing)
SMALL = {"low": ["can wait", "no rush at all", "whenever you can"],
         "high": ["urgent please help", "right now!", "my account is blocked and I need it today"]}


def small_examples(rows: dict[str, list[str]] = SMALL) -> tuple[list[str], list[str]]:
    return [t for ts in rows.values() for t in ts], [label for label, ts in rows.items() for _ in ts]


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class ClusterEmbedding:
    """A fake `embed`: text "<label> <i>" is a fixed unit vector near its label's random centre, a label's own
    name is its centre, anything else is a random unit vector. Separable by construction."""

    def __init__(self, labels: list[str], noise: float = 0.15, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.centres = {label: unit(self.rng.normal(size=DIM)) for label in labels}
        self.noise = noise
        self.vectors: dict[str, np.ndarray] = {label_text(label): c for label, c in self.centres.items()}
        self.calls = 0

    def example(self, label: str, i: int) -> str:
        text = f"{label} {i}"
        if text not in self.vectors:
            self.vectors[text] = unit(self.centres[label] + self.noise * self.rng.normal(size=DIM))
        return text

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        for t in texts:
            if t not in self.vectors:
                self.vectors[t] = unit(self.rng.normal(size=DIM))
        return np.stack([self.vectors[t] for t in texts]).astype(np.float32)


def cluster_examples(embed: ClusterEmbedding, per_label: int = PER_LABEL) -> tuple[list[str], list[str]]:
    labels = [label for label in embed.centres for _ in range(per_label)]
    texts = [embed.example(label, i) for label in embed.centres for i in range(per_label)]
    return texts, labels


def never_embed(texts: list[str]) -> np.ndarray:
    raise AssertionError("the examples must be checked before anything is embedded")


@pytest.fixture()
def predictor(tiny_checkpoint) -> Predictor:
    return Predictor.load(tiny_checkpoint)


# ---- choosing the head ---------------------------------------------------------------------------------

def test_separable_examples_reach_high_accuracy_and_the_report_adds_up():
    embed = ClusterEmbedding(LABELS)
    texts, labels = cluster_examples(embed)
    task = fit_task("topic", texts, labels, embed)
    report = task.report
    assert embed.calls == 1  # examples and label names in one call
    assert report.name == task.name == task.config.name == "topic"
    assert report.cv_accuracy >= 0.95 and 0.0 <= report.cv_spread <= 0.1, report.lines()
    assert report.counts == {label: PER_LABEL for label in LABELS}  # label order: first appearance
    assert sum(report.counts.values()) == len(texts) and report.duplicates_dropped == 0
    assert report.folds == fewshot.FOLDS
    assert list(report.candidates) == [c.name for c in fewshot.candidates()] and len(report.candidates) == 4
    assert all(0.0 <= a <= 1.0 for a in report.candidates.values())
    assert report.method == max(report.candidates, key=report.candidates.get)
    assert report.cv_accuracy == pytest.approx(report.candidates[report.method])
    assert task.config.params["candidate"] == report.method and task.config.params["num_examples"] == len(texts) + 4
    assert task.config.temperature in TEMPERATURES.tolist()
    assert task.config.labels == LABELS and task.config.kind == "examples" and task.config.reads == "embedding"
    assert report.scope_threshold == task.scope.config.threshold
    assert all(n <= len(texts) for _, _, n in report.confused)
    assert json.loads(json.dumps(report.to_dict()))["counts"] == report.counts  # JSON-friendly
    text = "\n".join(report.lines())
    assert "'topic'" in text and f"{len(texts):,} examples" in text and report.method in text
    # the fitted head: every example (and a fresh one per label) goes to its own label
    probs = task.probabilities(embed(texts))
    assert probs.shape == (len(texts), len(LABELS))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert [LABELS[i] for i in probs.argmax(axis=1)] == labels
    fresh = [embed.example(label, 100) for label in LABELS]
    assert task.probabilities(embed(fresh)).argmax(axis=1).tolist() == [0, 1, 2, 3]
    assert task.examples() == (texts, labels)


def test_overlapping_labels_are_reported_as_confused():
    embed = ClusterEmbedding(["a", "b", "c"], noise=0.15)
    embed.centres["b"] = embed.centres["a"]  # a and b cannot be told apart
    texts, labels = cluster_examples(embed, 10)
    report = fit_task("mixed", texts, labels, embed).report
    assert report.cv_accuracy < 0.9
    assert report.confused and {report.confused[0][0], report.confused[0][1]} == {"a", "b"}
    assert [n for *_, n in report.confused] == sorted((n for *_, n in report.confused), reverse=True)


def test_the_same_examples_give_the_same_task():
    one, two = ClusterEmbedding(LABELS), ClusterEmbedding(LABELS)
    first, second = fit_task("topic", *cluster_examples(one), one), fit_task("topic", *cluster_examples(two), two)
    assert first.report.candidates == second.report.candidates
    assert first.config.temperature == second.config.temperature
    for (k, a), (_, b) in zip(first.head.state_dict().items(), second.head.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


# ---- each head saved and reloaded ------------------------------------------------------------------------

@pytest.mark.parametrize("index", range(4), ids=[c.name for c in fewshot.candidates()])
def test_each_candidate_head_reloads_bit_exactly_and_shows_everywhere(tiny_checkpoint, tmp_path, monkeypatch, index):
    only = fewshot.candidates()[index]
    monkeypatch.setattr(fewshot, "candidates", lambda: [only])
    predictor = Predictor.load(tiny_checkpoint)
    report = predictor.add_task("urgency", *small_examples())
    assert report.method == only.name and list(report.candidates) == [only.name]
    assert predictor.tasks == ["intent", "sentiment", "urgency"] and "urgency" in predictor.scopes
    folder = checkpoint.save(predictor.model, tmp_path / "ckpt", predictor.scopes)
    stored = json.loads((folder / "config.json").read_text())
    head = stored["heads"][2]
    assert head["name"] == "urgency" and head["kind"] == "examples" and head["labels"] == ["low", "high"]
    assert head["params"]["method"] == only.params["method"] and head["scope"]["files"] == "scope_urgency"
    assert "scope" not in stored  # per head now, never the legacy top-level section
    assert (folder / "scope_urgency.safetensors").is_file() and (folder / "scope_urgency_sentences.json").is_file()

    reloaded = Predictor.load(folder)
    assert reloaded.tasks == predictor.tasks and reloaded.labels == predictor.labels
    assert reloaded.model.config.head("urgency").temperature == predictor.model.config.head("urgency").temperature
    sentences = SENTENCES + SMALL["low"][:1] + ["zzqx vortex plumbing haiku"]
    before, after = predictor.run(sentences), reloaded.run(sentences)
    for task in predictor.tasks:
        np.testing.assert_allclose(after.probs[task], before.probs[task], atol=1e-6, rtol=0, err_msg=task)
    np.testing.assert_allclose(after.scope_scores["urgency"], before.scope_scores["urgency"], atol=1e-6, rtol=0)
    assert reloaded.scopes["urgency"].config == predictor.scopes["urgency"].config
    assert reloaded.scopes["urgency"].texts == predictor.scopes["urgency"].texts
    old, new = predictions(before), predictions(after)
    assert [p["urgency"].in_scope for p in new] == [p["urgency"].in_scope for p in old]
    assert new[len(SENTENCES)]["urgency"].in_scope is True  # an example itself is in scope

    record = new[0].to_api()
    assert list(record) == ["text", "intent", "sentiment", "urgency", "truncated"]
    assert set(record["urgency"]["probs"]) == {"low", "high"} and isinstance(record["urgency"]["in_scope"], bool)
    assert len(new[0].table_row(1)) == len(table_headers(reloaded.labels)) == 2 + 2 * 3
    assert table_headers(reloaded.labels)[-2:] == ["urgency", "urgency confidence"]
    row = new[0].csv_row()
    assert list(row) == csv_columns(reloaded.labels, reloaded.scoped_heads)
    assert list(row)[-7:] == ["urgency", "urgency_score", "urgency_low", "urgency_high",
                              "urgency_closest", "urgency_in_scope", "urgency_scope_score"]
    path = tmp_path / "out.csv"
    write_csv(new, reloaded.labels, path, reloaded.scoped_heads)
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert [r["urgency_closest"] for r in rows] == [p["urgency"].label for p in new]
    assert [r["urgency"] for r in rows] == [p["urgency"].label if p["urgency"].in_scope else "none" for p in new]


def test_the_knn_head_stores_its_examples(tiny_checkpoint, tmp_path, monkeypatch):
    knn = next(c for c in fewshot.candidates() if c.params["method"] == "knn")
    monkeypatch.setattr(fewshot, "candidates", lambda: [knn])
    predictor = Predictor.load(tiny_checkpoint)
    texts, labels = small_examples()
    predictor.add_task("urgency", texts, labels)
    head = predictor.model.heads["urgency"]
    assert head.method == "knn" and head.k == 5
    assert head.examples.shape == (len(texts) + 2, DIM)  # + each label's name as one more example
    reloaded = Predictor.load(checkpoint.save(predictor.model, tmp_path / "ckpt", predictor.scopes))
    assert torch.equal(reloaded.model.heads["urgency"].examples, head.examples)
    assert torch.equal(reloaded.model.heads["urgency"].example_labels, head.example_labels)


def test_add_task_clears_the_cache_and_refuses_a_second_task_of_the_same_name(tiny_checkpoint):
    from mtl_core.serving.predictor import SentenceCache

    predictor = Predictor.load(tiny_checkpoint)
    predictor.cache = SentenceCache()
    predictor.run(SENTENCES)
    assert len(predictor.cache) == len(SENTENCES)
    predictor.add_task("urgency", *small_examples())
    assert len(predictor.cache) == 0
    assert set(predictor.run(SENTENCES).probs) == {"intent", "sentiment", "urgency"}
    with pytest.raises(InputError, match="already has a task named 'urgency'"):
        predictor.add_task("urgency", *small_examples())


# ---- a session's task never reaches the shared model -----------------------------------------------------

def test_example_task_and_with_head_leave_the_shared_model_untouched(predictor):
    model = predictor.model
    heads_before = list(model.heads)
    config_before = json.dumps(model.config.to_dict(), sort_keys=True)
    state_before = set(model.state_dict())
    task = predictor.example_task("yours", *small_examples())
    assert predictor.tasks == heads_before == ["intent", "sentiment"] and "yours" not in predictor.scopes
    view = model.with_head(task.config, task.head)
    assert view.task_names == ["intent", "sentiment", "yours"] and view.config.head("yours") is task.config
    assert list(model.heads) == heads_before and model.task_names == heads_before
    assert json.dumps(model.config.to_dict(), sort_keys=True) == config_before
    assert set(model.state_dict()) == state_before
    with pytest.raises(KeyError):
        model.config.head("yours")
    assert view.encoder is model.encoder and view.heads["intent"] is model.heads["intent"]  # shared, not copied
    # the view answers for its task; the model (and a second view) still do not know it
    results = predictor.run(SENTENCES)
    assert set(results.probs) == {"intent", "sentiment"}
    applied = results.with_example_task(task)
    assert set(applied.probs) == {"intent", "sentiment", "yours"} and set(results.probs) == {"intent", "sentiment"}
    other = predictor.example_task("theirs", *small_examples())
    second = model.with_head(other.config, other.head)
    assert "yours" not in second.task_names and "theirs" not in view.task_names
    with torch.inference_mode():
        batch = predictor.encoder.collate(predictor.encoder.tokenize_ids(SENTENCES).ids)
        assert set(model(**batch).logits) == {"intent", "sentiment"}
        np.testing.assert_allclose(view.probabilities("yours", view(**batch).logits["yours"]).numpy(),
                                   applied.probs["yours"], atol=1e-5)


def test_with_task_adds_a_task_to_results_without_changing_them(predictor):
    results = predictor.run(SENTENCES)
    task = predictor.example_task("yours", *small_examples())
    applied = results.with_example_task(task)
    assert applied.labels["yours"] == ["low", "high"] and applied.probs["yours"].shape == (len(SENTENCES), 2)
    assert applied.scoped_heads == ["yours"] and results.scoped_heads == [] and "yours" not in results.labels
    np.testing.assert_allclose(applied.probs["yours"], task.probabilities(results.embeddings), atol=0)
    np.testing.assert_array_equal(applied.embeddings, results.embeddings)
    found = predictions(applied)
    scores = task.scope.scores(results.embeddings)
    assert [p["yours"].in_scope for p in found] == list(scores >= task.scope.config.threshold)


# ---- explanations ----------------------------------------------------------------------------------------

def test_explain_an_example_task_and_an_added_one(predictor):
    texts, labels = small_examples()
    task = predictor.example_task("yours", texts, labels)
    sentence = "urgent please help me now"
    [found] = predictor.explain([sentence], "yours", extra=task)
    expected = task.probabilities(predictor.embed([sentence]))[0]
    assert found.task == "yours" and found.label == ["low", "high"][int(expected.argmax())]
    assert found.probability == pytest.approx(float(expected.max()), abs=1e-4)
    assert found.words == sentence.split() and len(found.scores) == len(found.words)
    assert all(np.isfinite(found.scores))
    [other] = predictor.explain([sentence], "yours", "low", extra=task)
    assert other.label == "low" and other.probability == pytest.approx(float(expected[0]), abs=1e-4)
    with pytest.raises(ValueError, match="unknown task 'yours'"):
        predictor.explain([sentence], "yours")  # without `extra`, the shared model has no such task
    with pytest.raises(ValueError, match="unknown label 'medium' for task 'yours'; valid: \\['low', 'high'\\]"):
        predictor.explain([sentence], "yours", "medium", extra=task)
    predictor.add_task("urgency", texts, labels)
    [added] = predictor.explain([sentence], "urgency")
    assert added.task == "urgency" and added.label in ("low", "high") and added.words == sentence.split()
    assert added.probability == pytest.approx(float(predictor.run([sentence]).probs["urgency"][0].max()), abs=1e-4)
    # a gradient method differentiates through the shown embedding, which the example head reads
    [grad] = predictor.explain([sentence], "urgency", method="integrated_gradients")
    assert grad.unit == "logit" and len(grad.scores) == len(grad.words) and all(np.isfinite(grad.scores))
    assert any(score != 0 for score in grad.scores)


# ---- out of scope ----------------------------------------------------------------------------------------

def test_the_scope_threshold_comes_from_the_examples_leave_one_out_scores():
    embed = ClusterEmbedding(LABELS)
    texts, labels = cluster_examples(embed, 10)
    task = fit_task("topic", texts, labels, embed)
    x = embed(texts).astype(np.float16).astype(np.float32)  # the detector stores fp16
    y = np.array([LABELS.index(label) for label in labels])
    loo = []
    for i in range(len(x)):  # each example against the label centres, itself left out of its own
        keep = np.arange(len(x)) != i
        centres = np.stack([x[keep & (y == c)].mean(axis=0) for c in range(len(LABELS))])
        loo.append(float((unit(centres) @ x[i]).max()))
    threshold = task.scope.config.threshold
    assert min(abs(threshold - v) for v in loo) < 1e-5
    assert (np.array(loo) >= threshold - 1e-6).mean() >= fewshot.SCOPE_RECALL
    assert task.scope.config.centroids and task.scope.texts == texts and task.scope.labels == labels

    def scores(vectors: np.ndarray) -> np.ndarray:
        return task.scope.scores(vectors)

    # the examples themselves (and new sentences like them) are in scope; something unlike all of them is not
    assert (scores(embed(texts)) >= threshold).mean() >= 0.95
    fresh = [embed.example(label, 50 + i) for label in LABELS for i in range(3)]
    assert (scores(embed(fresh)) >= threshold).mean() >= 0.9
    far = unit(-np.mean(embed(texts), axis=0))[None, :].astype(np.float32)
    assert scores(far)[0] < threshold
    empty = Results(["far", fresh[0]], np.concatenate([far, embed(fresh[:1])]), {}, {}, np.zeros(2, dtype=bool))
    found = predictions(empty.with_example_task(task))
    assert [p["topic"].in_scope for p in found] == [False, True]
    assert found[0]["topic"].shown_label().startswith("— none (closest:")


# ---- bad input, each with its message --------------------------------------------------------------------

def test_one_label_only_is_refused_before_embedding():
    with pytest.raises(InputError, match="only the label 'a': a task needs at least 2 labels"):
        fit_task("t", ["x", "y", "z"], ["a", "a", "a"], never_embed)
    with pytest.raises(InputError, match="no examples"):
        fit_task("t", ["", " "], ["a", "b"], never_embed)


def test_the_callers_output_check_sees_the_cleaned_name_and_labels_before_embedding():
    seen = []

    def refuse(name: str, labels: list[str]) -> None:
        seen.append((name, labels))
        raise InputError("clash")

    with pytest.raises(InputError, match="clash"):
        fit_task(" t ", ["w", "x", "y", "z"], [" b", "b", "a", "a "], never_embed, check_outputs=refuse)
    assert seen == [("t", ["b", "a"])]


def test_a_label_that_would_repeat_a_column_is_refused_before_embedding(predictor, monkeypatch):
    monkeypatch.setattr(predictor, "embed", never_embed)
    with pytest.raises(InputError, match="would make the output column 'x_score' twice"):
        predictor.example_task("x", ["w", "x", "y", "z"], ["score", "score", "other", "other"])


def test_a_label_with_one_example_is_refused():
    with pytest.raises(InputError, match=r"1 label\(s\) have fewer than 2 examples \('b'\)"):
        fit_task("t", ["x", "y", "z"], ["a", "a", "b"], never_embed)


def test_more_than_200_labels_are_refused():
    labels = [f"l{i}" for i in range(MAX_LABELS + 1) for _ in range(2)]
    texts = [f"text {i}" for i in range(len(labels))]
    with pytest.raises(InputError, match="201 labels; at most 200 per task"):
        fit_task("t", texts, labels, never_embed)


def test_more_than_20000_examples_are_refused_before_embedding():
    n = MAX_EXAMPLES + 1
    texts, labels = [f"example {i}" for i in range(n)], ["a", "b"] * (n // 2) + ["a"]
    with pytest.raises(InputError, match="20,001 examples; at most 20,000 per task"):
        fit_task("t", texts, labels, never_embed)


def test_a_label_longer_than_100_characters_is_refused():
    with pytest.raises(InputError, match="has 101 characters; at most 100"):
        fit_task("t", ["w", "x", "y", "z"], ["a", "a", "b" * 101, "b" * 101], never_embed)


def test_the_same_text_with_two_labels_is_refused():
    with pytest.raises(InputError, match=r"1 example\(s\) have two different labels, e.g. 'same text'"):
        fit_task("t", ["same text", "x", "same  text ", "y"], ["a", "a", "b", "b"], never_embed)


@pytest.mark.parametrize("name, match", [("Bad Name", "must start with a lowercase letter"),
                                         ("", "must start with a lowercase letter"),
                                         ("9lives", "must start with a lowercase letter"),
                                         ("x" * 41, "at most 40 characters"),
                                         ("intent", "already has a task named 'intent'"),
                                         ("sentiment", "already has a task named 'sentiment'")])
def test_bad_and_taken_task_names(predictor, name, match):
    with pytest.raises(InputError, match=match):
        predictor.example_task(name, *small_examples())


def test_empty_lines_are_skipped_and_duplicates_dropped_and_counted():
    text = "a: one\n\n   \na: two\na: one\n  a :  one  \nb: three\r\nb: four\nb: four\n"
    texts, labels = examples_from_lines(text)
    assert texts == ["one", "two", "one", "one", "three", "four", "four"]
    assert labels == ["a"] * 4 + ["b"] * 3
    embed = ClusterEmbedding(["a", "b"])
    for t, y in zip(texts, labels):
        embed.vectors.setdefault(t, embed.centres[y])
    task = fit_task("t", texts, labels, embed)
    assert task.report.duplicates_dropped == 3 and task.report.counts == {"a": 2, "b": 2}
    assert task.examples() == (["one", "two", "three", "four"], ["a", "a", "b", "b"])
    assert "3 duplicates dropped" in task.report.lines()[0]


@pytest.mark.parametrize("text, match", [("", "no examples"), ("\n \n", "no examples"),
                                         ("a: x\nno colon here\n", r"line 2 \('no colon here'\) is not `label: example`"),
                                         ("a: x\n: no label\n", "line 2"), ("a: x\nb:   \n", "line 2")])
def test_lines_that_are_not_label_colon_example(text, match):
    with pytest.raises(InputError, match=match):
        examples_from_lines(text)


def test_a_label_with_commas_quotes_html_and_emoji_round_trips_unchanged(predictor, tmp_path):
    odd = 'billing, "urgent" <b>now</b> & \'x\' \U0001f600'
    texts = ["charged twice, why?", 'the "fee" <script>alert(1)</script>', "I love it", "great app"]
    labels = [odd, odd, "praise", "praise"]
    path = tmp_path / "examples.csv"
    write_examples(texts, labels, path)
    assert examples_from_csv(path.read_bytes(), path.name) == (texts, labels)
    assert examples_from_lines("\n".join(f"{y}: {t}" for t, y in zip(texts, labels))) == (texts, labels)
    task = predictor.example_task("odd", texts, labels)
    assert task.config.labels == [odd, "praise"] and list(task.report.counts) == [odd, "praise"]
    results = predictor.run(["a sentence"]).with_example_task(task)
    found = predictions(results)
    assert set(found[0]["odd"].probs) == {odd, "praise"} and found[0]["odd"].label in (odd, "praise")
    assert set(found[0].to_api()["odd"]["probs"]) == {odd, "praise"}
    assert f"odd_{odd}" in found[0].csv_row()
    out = tmp_path / "out.csv"
    write_csv(found, results.labels, out, results.scoped_heads)
    [row] = list(csv.DictReader(out.open(encoding="utf-8")))
    assert f"odd_{odd}" in row and row["odd"] == found[0]["odd"].label


@pytest.mark.parametrize("data, match", [(b"text,tag\nhello,a\n", "no `label` column"),
                                         (b"sentence,label\nhello,a\n", "no `text` column"),
                                         (b"text,label\n,a\n", "examples.csv line 2, text: empty"),
                                         (b"text,label\nhello,\n", "examples.csv line 2, label: empty"),
                                         (b"text,label\n", "examples.csv has no examples")])
def test_an_examples_csv_without_its_columns(data, match):
    with pytest.raises(InputError, match=match):
        examples_from_csv(data, "examples.csv")


def test_an_examples_file_must_be_a_csv():
    with pytest.raises(InputError, match="examples come as a .csv"):
        examples_from_csv(b"text,label\nx,a\n", "examples.txt")


def test_an_example_of_5000_characters_is_accepted_and_truncated(predictor):
    long = ("word " * 1000)[:4999] + "s"
    assert len(long) == 5000
    texts, labels = [long, "short one", "hello there", "good morning"], ["a", "a", "b", "b"]
    task = predictor.example_task("long", texts, labels)
    assert task.report.counts == {"a": 2, "b": 2} and task.examples()[0][0] == long
    results = predictor.run([long, "hi"]).with_example_task(task)
    assert results.truncated.tolist() == [True, False]
    assert np.isfinite(results.probs["long"]).all() and np.isfinite(results.scope_scores["long"]).all()
    [(text, label, cosine)] = task.scope.nearest(results.embeddings[0])
    assert (text, label) == (long, "a") and cosine == pytest.approx(1.0, abs=2e-3)  # finds itself (stored in fp16)


# ---- the app's store of sessions' tasks ----------------------------------------------------------------

def test_task_store_is_private_per_token_and_bounded(predictor):
    from mtl_core.serving.session import TaskStore

    task = predictor.example_task("yours", *small_examples())
    store = TaskStore(max_tasks=2, max_examples=len(task.scope.texts) * 2)
    first, second = store.put(task), store.put(task)
    assert first != second and len(first) >= 16 and store.get(first) is task
    assert store.get(None) is None and store.get("") is None and store.get("guess") is None
    third = store.put(task)  # beyond 2 tasks: the least recently used (second; first was just read) goes
    assert len(store) == 2 and store.get(second) is None and store.get(first) is task and store.get(third) is task
    replaced = store.put(task, replacing=first)
    assert store.get(first) is None and len(store) == 2 and store.get(replaced) is task
    store.drop(replaced)
    assert store.get(replaced) is None and len(store) == 1
    small = TaskStore(max_tasks=10, max_examples=len(task.scope.texts))  # room for one task's examples
    a, b = small.put(task), small.put(task)
    assert small.get(a) is None and small.get(b) is task and small.examples == len(task.scope.texts)


# ---- a task's name and labels never overwrite another output field ----------------------------------------

@pytest.mark.parametrize("name", ["text", "truncated", "intent_score", "sentiment_negative", "intent_in_scope"])
def test_a_task_name_never_overwrites_another_field(predictor, name):
    """A name that is another field of the record or the CSV is refused, or it must not overwrite that field."""
    try:
        task = predictor.example_task(name, *small_examples())
    except InputError:
        return  # refused with a reason: fine
    results = predictor.run(["hello there"]).with_example_task(task)
    [found] = predictions(results)
    record = found.to_api()
    assert record["text"] == "hello there" and record["truncated"] is False, record
    assert isinstance(record.get(name), dict) and {"label", "score"} <= set(record[name]), record  # its answer
    columns = csv_columns(results.labels, results.scoped_heads)
    assert len(columns) == len(set(columns)), sorted({c for c in columns if columns.count(c) > 1})
    row = found.csv_row()
    assert row["text"] == "hello there" and row["intent_score"] == round(found["intent"].score, 4)
    assert row["sentiment_negative"] == round(found["sentiment"].probs["negative"], 4)


@pytest.mark.parametrize("label", ["score", "in_scope", "scope_score"])
def test_a_label_name_never_overwrites_the_task_columns(predictor, label):
    """A small task's label columns are <name>_<label>: a label named `score` must not overwrite <name>_score."""
    texts = ["can wait", "no rush at all", "urgent please", "right now"]
    try:
        task = predictor.example_task("x", texts, [label, label, "other", "other"])
    except InputError:
        return
    results = predictor.run(["hello there"]).with_example_task(task)
    [found] = predictions(results)
    columns = csv_columns(results.labels, results.scoped_heads)
    assert len(columns) == len(set(columns)), sorted({c for c in columns if columns.count(c) > 1})
    row = found.csv_row()
    assert row["x_score"] == round(found["x"].score, 4) and row["x_in_scope"] == int(found["x"].in_scope)
