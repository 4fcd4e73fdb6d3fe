"""The built-in tasks as data: what the code needs to know about each that neither its data nor a checkpoint says.

Training, evaluation, the out-of-scope detector, the app's reference map, its colours and its wording read
the tasks from here, so a third built-in task is one more entry in BUILTIN_TASKS (and its data folder).
A task added from examples (fewshot.py) has no definition: it is known by its checkpoint's head config alone.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mtl_core.model.config import HeadConfig
from mtl_core.tasks.intent_groups import GROUP_OF

DEFAULT_LABEL_NOUN = "label"  # what one label of a task without a definition (a task from examples) is called


@dataclass(frozen=True)
class TaskDefinition:
    name: str  # its head's name: the key of its answers in records, CSV columns and the API
    dataset: str  # the public data set its data folder holds, in words
    folder: str  # its folder in the data folder: train.csv, test.csv, optional dev.csv, labels.json
    primary_metric: str  # the data set's official metric (a key of training.metrics.task_metrics): model choice
    reference_per_label: int  # training sentences per label on the app's reference map
    label_noun: str = DEFAULT_LABEL_NOUN  # what one label is called in the app: "None of the 77 intents"
    # the labels when the task fixes them itself (`data prepare` writes them to labels.json); empty: the data
    # set publishes its own list. Either way the data folder's labels.json is what training and loading read.
    fixed_labels: tuple[str, ...] = ()
    colours: Mapping[str, str] = field(default_factory=dict)  # label id -> its colour on the map, by meaning
    # label id -> the group it is coloured by (groups in order of first appearance): many labels, few colours
    label_groups: Mapping[str, str] = field(default_factory=dict)
    # training fits this task's out-of-scope detector on its own training sentences; at most one task does,
    # since the detector's files are the checkpoint's scope.* (scope.SCOPE_STEM)
    fits_scope: bool = False

    @property
    def groups(self) -> list[str]:
        return list(dict.fromkeys(self.label_groups.values()))


INTENT = TaskDefinition(name="intent", dataset="Banking77", folder="intent", primary_metric="accuracy",
                        reference_per_label=8,  # x 77 intents = 616 sentences
                        label_noun="intent", label_groups=GROUP_OF, fits_scope=True)
SENTIMENT = TaskDefinition(name="sentiment", dataset="SemEval", folder="sentiment", primary_metric="macro_recall",
                           reference_per_label=130,  # x 3 classes = 390 sentences
                           fixed_labels=("negative", "neutral", "positive"),
                           colours={"negative": "#d62728", "neutral": "#7f7f7f", "positive": "#2ca02c"})
BUILTIN_TASKS: tuple[TaskDefinition, ...] = (INTENT, SENTIMENT)  # in this order: heads, data, the app's panels
BUILTIN_NAMES: tuple[str, ...] = tuple(task.name for task in BUILTIN_TASKS)
SCOPED_TASK = next(task for task in BUILTIN_TASKS if task.fits_scope)  # the task whose detector training fits


def task_definition(name: str) -> TaskDefinition:
    """The built-in task called `name`; ValueError listing the valid names for any other."""
    for task in BUILTIN_TASKS:
        if task.name == name:
            return task
    raise ValueError(f"unknown task {name!r}; valid: {list(BUILTIN_NAMES)}")


def label_noun(task: str) -> str:
    """What one of a task's labels is called in the app ("intent"); "label" for a task without a definition."""
    return next((found.label_noun for found in BUILTIN_TASKS if found.name == task), DEFAULT_LABEL_NOUN)


def builtin_heads(labels: Mapping[str, Sequence[str]], hidden: int = 0, dropout: float = 0.1) -> list[HeadConfig]:
    """A new, untrained sentence head per built-in task, in BUILTIN_TASKS order; `labels`: task name -> its
    label ids (the data folder's labels.json: data.loading.builtin_labels)."""
    missing = [task.name for task in BUILTIN_TASKS if task.name not in labels]
    if missing:
        raise ValueError(f"no labels for the built-in task(s) {missing}; got labels of {list(labels)}")
    return [HeadConfig(task.name, list(labels[task.name]), hidden=hidden, dropout=dropout) for task in BUILTIN_TASKS]
