"""What the server keeps for a browser session between its events: its last analysis with the maps and
search drawn from it (Session), and its own task, under a token only that session holds (TaskStore)."""
from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from mtl_core.serving.analysis import Analysis
from mtl_core.serving.maps import MapView, map_view
from mtl_core.serving.reference import ReferenceBuilder
from mtl_core.serving.search import Hit
from mtl_core.tasks.fewshot import ExampleTask

# The sessions' own tasks: ~3 kB per example (its embedding in the out-of-scope detector, and in the head
# for k-NN), so these caps bound them at ~300 MB whatever the number of visitors (TaskStore)
STORED_EXAMPLES_MAX = 100_000
STORED_TASKS_MAX = 64


@dataclass
class Session:
    """Per-browser-session state: the last analysis and the maps drawn from it so far."""

    analysis: Analysis
    maps: dict[tuple[int, bool], MapView] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)  # the last search's results, ringed on the map

    def map(self, dims: int, builder: ReferenceBuilder | None, use_reference: bool) -> MapView:
        key = (dims, use_reference)
        if key not in self.maps:
            view = map_view(self.analysis.embeddings, dims, builder, use_reference)
            if not view.final:
                return view
            self.maps[key] = view
        return self.maps[key]


class TaskStore:
    """The browser sessions' own tasks, each under a random token that only its session holds, so one
    visitor's task never reaches another's results. Bounded: beyond STORED_TASKS_MAX tasks or
    STORED_EXAMPLES_MAX examples in all, the least recently used task is dropped (its session is told to
    build it again)."""

    def __init__(self, max_tasks: int = STORED_TASKS_MAX, max_examples: int = STORED_EXAMPLES_MAX):
        self.max_tasks, self.max_examples = max_tasks, max_examples
        self._tasks: OrderedDict[str, ExampleTask] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def examples(self) -> int:
        return sum(len(t.scope.texts) for t in self._tasks.values())

    def put(self, task: ExampleTask, replacing: str | None = None) -> str:
        token = secrets.token_urlsafe(16)
        with self._lock:
            self._tasks.pop(replacing or "", None)
            self._tasks[token] = task
            while len(self._tasks) > self.max_tasks or (len(self._tasks) > 1 and self.examples > self.max_examples):
                self._tasks.popitem(last=False)
        return token

    def get(self, token: str | None) -> ExampleTask | None:
        with self._lock:
            task = self._tasks.get(token or "")
            if task is not None:
                self._tasks.move_to_end(token)
            return task

    def drop(self, token: str | None) -> None:
        with self._lock:
            self._tasks.pop(token or "", None)
