"""One typed prediction per sentence, written out as the API record, the table row and the CSV row;
task names and labels come from the heads, so a third head needs no edit to any writer."""
from __future__ import annotations

import csv

import numpy as np

from mtl_core.config import HeadConfig
from mtl_core.model import MultiTaskModel
from mtl_core.predictor import Predictor
from mtl_core.records import csv_columns, predictions, write_csv
from ui.texts import table_headers

from conftest import INTENTS


def predictor_with_a_third_head(tiny_encoder) -> Predictor:
    model = MultiTaskModel.build(tiny_encoder, INTENTS)
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
