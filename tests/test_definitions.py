"""The built-in tasks as data (mtl_core/tasks/definitions.py): lookups, the heads built from them, and the code
that reads them instead of naming a task."""
from __future__ import annotations

import dataclasses
import json
from collections import Counter

import pytest

from mtl_core.model.config import ModelConfig
from mtl_core.settings import DEFAULT_CHECKPOINT
from mtl_core.tasks import checkpoint
from mtl_core.tasks.definitions import (
    BUILTIN_TASKS,
    INTENT,
    SCOPED_TASK,
    SENTIMENT,
    builtin_heads,
    label_noun,
    task_definition,
)
from mtl_core.training.metrics import PRIMARY_METRIC, task_metrics

from conftest import SENTIMENT_ROWS, write_split

TOPIC = dataclasses.replace(SENTIMENT, name="topic", dataset="Topics", folder="topic", label_noun="topic",
                            reference_per_label=2, fixed_labels=(), colours={"sport": "#000001", "news": "#000002"})


def test_a_built_in_task_is_found_by_name_and_any_other_name_is_refused_with_the_valid_ones():
    assert task_definition("intent") is INTENT and task_definition("sentiment") is SENTIMENT
    with pytest.raises(ValueError, match=r"unknown task 'topic'; valid: \['intent', 'sentiment'\]"):
        task_definition("topic")


def test_names_and_folders_are_unique_and_one_task_owns_the_scope_files():
    assert len({t.name for t in BUILTIN_TASKS}) == len({t.folder for t in BUILTIN_TASKS}) == len(BUILTIN_TASKS)
    assert [t for t in BUILTIN_TASKS if t.fits_scope] == [SCOPED_TASK] and SCOPED_TASK.name == "intent"


def test_primary_metrics_come_from_the_definitions_and_are_metrics_training_computes():
    assert PRIMARY_METRIC == {"intent": "accuracy", "sentiment": "macro_recall"}
    assert set(PRIMARY_METRIC.values()) <= set(task_metrics([0, 1], [0, 1]))


def test_built_in_heads_follow_the_definitions_order_and_need_every_tasks_labels():
    heads = builtin_heads({"sentiment": ["neg", "pos"], "intent": ["a", "b", "c"]}, hidden=8, dropout=0.2)
    assert [(h.name, h.labels, h.hidden, h.dropout, h.trained) for h in heads] == [
        ("intent", ["a", "b", "c"], 8, 0.2, False), ("sentiment", ["neg", "pos"], 8, 0.2, False)]
    with pytest.raises(ValueError, match=r"no labels for the built-in task\(s\) \['sentiment'\]"):
        builtin_heads({"intent": ["a", "b"]})


def test_the_app_calls_a_label_by_its_tasks_noun():
    from ui.texts import none_heading

    assert label_noun("intent") == "intent" and label_noun("sentiment") == label_noun("topic") == "label"
    assert none_heading("intent", 77) == "None of the 77 intents"
    assert none_heading("topic", 4) == "None of the 4 labels"


def test_the_shipped_checkpoint_still_puts_its_scope_on_the_task_that_owns_it():
    config = checkpoint.read_config(DEFAULT_CHECKPOINT)
    assert config.head(SCOPED_TASK.name).scope["threshold"] > 0
    assert [h.name for h in config.heads if h.scope] == [SCOPED_TASK.name]


def test_an_old_scope_section_that_names_no_head_belongs_to_the_first_head():
    data = json.loads((DEFAULT_CHECKPOINT / "config.json").read_text())
    data["scope"] = {k: v for k, v in data["scope"].items() if k != "head"}
    config = ModelConfig.from_dict(data)
    assert config.heads[0].scope["head"] == config.heads[0].name
    assert "head" not in data["scope"]  # the caller's dict is left as it was


def test_a_third_built_in_task_is_one_more_definition(tiny_data_dir, tmp_path, monkeypatch):
    """The reference map samples it and the map colours its labels, with no other code naming it."""
    from mtl_core.serving import reference
    from ui import figures

    for task in ("intent", "sentiment"):
        (tmp_path / task).symlink_to(tiny_data_dir / task)
    (tmp_path / "topic").mkdir()
    write_split(tmp_path / "topic" / "train.csv", {"sport": ["a goal", "a match", "a race"], "news": ["an election"]})
    monkeypatch.setattr(reference, "BUILTIN_TASKS", (*BUILTIN_TASKS, TOPIC))
    refset = reference.from_data_dir(tmp_path)
    counts = Counter(s for s, y in zip(refset.sources, refset.labels, strict=True))
    assert counts["topic"] == 3 and counts["sentiment"] == 3 * len(SENTIMENT_ROWS["negative"])
    assert refset.origin.startswith("18 Banking77 + 18 SemEval + 3 Topics training sentences")

    monkeypatch.setattr(figures, "BUILTIN_TASKS", (*BUILTIN_TASKS, TOPIC))
    figures.colour_scheme.cache_clear()
    try:
        assert figures.colour_map(["news", "sport"])["Sport"] == "#000001"
    finally:
        figures.colour_scheme.cache_clear()
