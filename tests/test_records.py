"""One typed prediction per sentence, written out as the API record, the table row and the CSV row;
task names and labels come from the heads, so a third head needs no edit to any writer."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from mtl_core.model.config import HeadConfig
from mtl_core.model.model import MultiTaskModel
from mtl_core.serving.predictor import Predictor
from mtl_core.serving.records import csv_columns, predictions, write_csv
from ui.texts import table_headers

from conftest import INTENTS, two_task_model


def predictor_with_a_third_head(tiny_encoder) -> Predictor:
    model = two_task_model(tiny_encoder, INTENTS)
    heads = model.config.heads + [HeadConfig("urgency", ["low", "high"])]
    return Predictor(MultiTaskModel(tiny_encoder, type(model.config)(heads=heads, hidden_size=32,
                                                                      num_backbone_layers=2)))


def test_a_third_head_appears_in_the_api_the_table_and_the_csv(tiny_encoder, tmp_path):
    predictor = predictor_with_a_third_head(tiny_encoder)
    found = predictor.predict(["my card is lost", "hello"])
    record = found[0].to_api()
    assert set(record) == {"text", "intent", "sentiment", "urgency", "truncated"}
    assert set(record["urgency"]["probs"]) == {"low", "high"}
    assert table_headers(predictor.labels)[-2:] == ["urgency", "urgency confidence"]
    assert len(found[0].table_row(1)) == len(table_headers(predictor.labels))
    path = tmp_path / "out.csv"
    write_csv(found, predictor.labels, path)
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert list(rows[0]) == csv_columns(predictor.labels)
    assert list(rows[0])[-4:] == ["urgency", "urgency_score", "urgency_low", "urgency_high"]
    assert rows[1]["urgency"] == found[1]["urgency"].label


def test_every_shape_carries_the_same_numbers(tiny_checkpoint):
    predictor = Predictor.load(tiny_checkpoint)
    results = predictor.run(["where is my card", "I love it"])
    first = predictions(results)[0]
    best = int(np.argmax(results.probs["intent"][0]))
    assert first["intent"].label == INTENTS[best] and first["intent"].score == float(results.probs["intent"][0, best])
    row = first.csv_row()
    assert row["intent"] == first["intent"].label and row["intent_score"] == round(first["intent"].score, 4)
    assert first.table_row(1)[3] == round(first["intent"].score, 3)
    assert first.to_api()["sentiment"]["probs"] == first["sentiment"].probs


# ---- an out-of-scope row in the CSV, and an input's other columns --------------------------------------

def rejected_and_accepted() -> list:
    from mtl_core.serving.records import Prediction, TaskPrediction

    sentiment = TaskPrediction("positive", 0.5, {"negative": 0.2, "neutral": 0.3, "positive": 0.5})
    probs = {"card_arrival": 0.6, "age_limit": 0.4}
    return [Prediction("I love pizza.", {"intent": TaskPrediction("card_arrival", 0.6, probs, False, 0.2),
                                         "sentiment": sentiment}, False),
            Prediction("where is my card", {"intent": TaskPrediction("card_arrival", 0.6, probs, True, 0.9),
                                            "sentiment": sentiment}, False)]


def test_an_out_of_scope_row_says_none_as_the_app_does_with_the_closest_label_beside_it(tmp_path):
    from mtl_core.serving.records import NONE_LABEL

    rejected, accepted = rejected_and_accepted()
    row = rejected.csv_row()
    assert row["intent"] == NONE_LABEL == "none" and row["intent_closest"] == "card_arrival"
    assert row["intent_score"] == 0.6  # the closest label's probability, as the app's confidence
    assert (row["intent_in_scope"], row["intent_scope_score"]) == (0, 0.2)
    assert rejected.table_row(1)[2] == f"— {NONE_LABEL} (closest: Card arrival)"  # the app's words for the same
    assert accepted.csv_row()["intent"] == accepted.csv_row()["intent_closest"] == "card_arrival"
    assert "sentiment_closest" not in row  # a head without a detector: its label is always its answer
    labels = {"intent": ["card_arrival", "age_limit"], "sentiment": ["negative", "neutral", "positive"]}
    columns = csv_columns(labels, ["intent"])
    assert list(row) == columns
    assert columns[:len(csv_columns(labels))] == csv_columns(labels)  # the columns before the scope ones never move
    assert columns[-3:] == ["intent_closest", "intent_in_scope", "intent_scope_score"]
    path = tmp_path / "out.csv"
    write_csv([rejected, accepted], labels, path, ["intent"])
    written = list(csv.DictReader(path.open(encoding="utf-8")))
    assert [(r["intent"], r["intent_closest"], r["intent_in_scope"]) for r in written] == [
        ("none", "card_arrival", "0"), ("card_arrival", "card_arrival", "1")]


def test_the_api_record_of_an_out_of_scope_sentence_says_none_as_the_csv_does():
    rejected, accepted = rejected_and_accepted()
    for prediction in (rejected, accepted):
        record, row = prediction.to_api()["intent"], prediction.csv_row()
        assert (record["label"], record["closest"], record["in_scope"]) == (
            row["intent"], row["intent_closest"], bool(row["intent_in_scope"]))
    record = rejected.to_api()["intent"]
    assert record["label"] == "none" and record["closest"] == "card_arrival"
    assert record["score"] == 0.6 and record["top"][0] == ["card_arrival", 0.6]  # the closest label's numbers, kept
    assert accepted.to_api()["intent"]["label"] == "card_arrival"
    assert "closest" not in rejected.to_api()["sentiment"]  # a head without a detector: its label is its answer


@pytest.mark.parametrize("columns, taken, expected", [
    (["id", "channel"], ["text", "intent"], ["id", "channel"]),
    (["intent", "text", "note"], ["text", "intent"], ["input_intent", "input_text", "note"]),
    (["intent", "input_intent"], ["intent"], ["input_input_intent", "input_intent"]),  # the input's own keeps its name
    (["id", "id"], ["text"], ["id", "input_id"]),  # a name twice: the second is prefixed
    ([], ["text"], []),
])
def test_an_input_column_never_takes_an_output_columns_name(columns, taken, expected):
    from mtl_core.serving.records import carried_names

    names = carried_names(columns, taken)
    assert names == expected and not set(names) & set(taken) and len(set(names)) == len(names)


def test_write_csv_puts_the_inputs_other_columns_first_spreadsheet_safe(tmp_path):
    rows = rejected_and_accepted()
    labels = {"intent": ["card_arrival", "age_limit"], "sentiment": ["negative", "neutral", "positive"]}
    path = tmp_path / "out.csv"
    write_csv(rows, labels, path, ["intent"], ["id", "intent", "note"], [["7", "refund", "=1+2"], ["8", "", "ok"]])
    written = list(csv.DictReader(path.open(encoding="utf-8")))
    assert list(written[0]) == ["id", "input_intent", "note", *csv_columns(labels, ["intent"])]
    assert [(r["id"], r["input_intent"], r["note"], r["intent"]) for r in written] == [
        ("7", "refund", "'=1+2", "none"), ("8", "", "ok", "card_arrival")]
    with pytest.raises(ValueError, match="1 rows of input columns for 2 predictions"):
        write_csv(rows, labels, path, ["intent"], ["id"], [["7"]])


def test_every_input_row_gets_its_csv_row_in_order_an_error_row_with_empty_predictions(tmp_path):
    from mtl_core.serving.inputs import Row

    rejected, accepted = rejected_and_accepted()
    labels = {"intent": ["card_arrival", "age_limit"], "sentiment": ["negative", "neutral", "positive"]}
    inputs = [Row(rejected.text), Row("", "empty"), Row(accepted.text), Row("=x" * 3, "not UTF-8 (bad byte at character 2)")]
    path = tmp_path / "out.csv"
    write_csv([rejected, accepted], labels, path, ["intent"], ["id"], [["1"], ["2"], ["3"], ["4"]], inputs)
    written = list(csv.DictReader(path.open(encoding="utf-8")))
    assert list(written[0]) == ["id", *csv_columns(labels, ["intent"])]
    assert csv_columns(labels)[:3] == ["text", "truncated", "error"]
    assert [(r["id"], r["text"], r["truncated"], r["error"], r["intent"]) for r in written] == [
        ("1", "I love pizza.", "0", "", "none"), ("2", "", "", "empty", ""), ("3", "where is my card", "0", "", "card_arrival"),
        ("4", "'=x=x=x", "", "not UTF-8 (bad byte at character 2)", "")]  # an error row's text is guarded too
    assert all(v == "" for r in (written[1], written[3]) for k, v in r.items() if k not in ("id", "text", "error"))
    with pytest.raises(ValueError, match="2 predictions for 1 rows without an error"):
        write_csv([rejected, accepted], labels, path, inputs=[Row("a"), Row("", "empty")])
