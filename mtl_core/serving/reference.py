"""A reference map: labelled example sentences with a UMAP fitted once, onto which new sentences are
projected with `transform`, so even a handful of sentences lands in a meaningful neighbourhood.

The reference sentences come from the data folder when one is configured (a stratified sample of the
Banking77 and SemEval training sets, never committed), else from assets/reference_sentences.csv,
sentences written for this project. Building the map (embedding + two UMAP fits) takes tens of
seconds on a small CPU, mostly compiling UMAP's numba code, so `ReferenceBuilder` does it in a background
thread; the app waits for it before serving (app.py), so no visitor sees the fallback. While it is not
ready (a caller that does not wait, or a failed build), callers see `map is None` and fall back.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtl_core.data.loading import read_rows
from mtl_core.serving.projection import CosineUMAP, umap_method, warm_up
from mtl_core.settings import ROOT
from mtl_core.tasks.definitions import BUILTIN_TASKS

log = logging.getLogger(__name__)

SHIPPED_REFERENCE = ROOT / "assets" / "reference_sentences.csv"
MAP_DIMS = (2, 3)


@dataclass(frozen=True)
class ReferenceSet:
    texts: list[str]
    sources: list[str]  # which task the label belongs to (a built-in task's name)
    labels: list[str]
    origin: str  # where the sentences came from, in words

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class Neighbour:
    text: str
    source: str
    label: str
    cosine: float


def read_labelled_csv(path: Path) -> list[tuple[str, str]]:
    return [(row["text"], row["label"]) for row in read_rows(path) if row["text"].strip()]


def sample_per_label(rows: list[tuple[str, str]], per_label: int, rng: random.Random) -> list[tuple[str, str]]:
    """Up to per_label rows of every label, in a seeded random choice, labels in sorted order."""
    by_label: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for row in rows:
        by_label[row[1]].append(row)
    return [row for label in sorted(by_label)
            for row in rng.sample(by_label[label], min(per_label, len(by_label[label])))]


def from_data_dir(data_dir: Path, seed: int = 0) -> ReferenceSet:
    """Each built-in task's reference_per_label training sentences of every label, tasks in BUILTIN_TASKS order."""
    rng = random.Random(seed)
    rows, counts = [], []
    for task in BUILTIN_TASKS:
        sample = sample_per_label(read_labelled_csv(data_dir / task.folder / "train.csv"), task.reference_per_label, rng)
        rows += [(text, task.name, label) for text, label in sample]
        counts.append(f"{len(sample)} {task.dataset}")
    return ReferenceSet([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                        f"{' + '.join(counts)} training sentences from the data folder")


def from_csv(path: Path = SHIPPED_REFERENCE) -> ReferenceSet:
    """A CSV with columns text,source,label."""
    rows = [(r["text"], r["source"], r["label"]) for r in read_rows(path)]
    return ReferenceSet([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                        f"{len(rows)} example sentences shipped with the app ({path.name})")


def load_reference_set(data_dir: str | Path | None = None) -> ReferenceSet:
    """From `data_dir` when given, else the shipped example sentences."""
    return from_data_dir(Path(data_dir)) if data_dir else from_csv()


class ReferenceMap:
    """Reference sentences with their unit-length embeddings and one fitted UMAP per output dimension."""

    def __init__(self, refset: ReferenceSet, embeddings: np.ndarray, models: dict[int, object]):
        self.refset = refset
        self.embeddings = embeddings  # (R, H), unit length
        self.models = models
        self._lock = threading.Lock()  # umap-learn does not promise that transform is thread-safe

    @classmethod
    def fit(cls, refset: ReferenceSet, embeddings: np.ndarray, dims: tuple[int, ...] = MAP_DIMS) -> "ReferenceMap":
        models = {d: CosineUMAP(len(refset), d).fit(embeddings) for d in dims}
        return cls(refset, embeddings, models)

    def coords(self, dims: int) -> np.ndarray:
        """The reference points' own positions, (R, dims)."""
        return self.models[dims].embedding_

    def transform(self, embeddings: np.ndarray, dims: int) -> np.ndarray:
        """Place new sentences on the fitted map: (N, H) -> (N, dims)."""
        with self._lock:
            return self.models[dims].transform(embeddings).astype(np.float32)

    def method(self) -> str:
        return f"UMAP reference map ({len(self.refset):,} labelled sentences; yours placed with transform)"

    def description(self, dims: int) -> str:
        return f"{umap_method(self.models[dims].n_neighbors)}, fitted once on {self.refset.origin}"

    def nearest(self, embedding: np.ndarray, k: int = 5, source: str | None = None) -> list[Neighbour]:
        """The k reference sentences (of one task, when `source` is given) with the highest cosine
        similarity to one unit-length embedding (H,)."""
        ref = self.refset
        scores = self.embeddings @ embedding  # (R, H) @ (H,) -> (R,)
        if source is not None:
            scores = np.where(np.asarray(ref.sources) == source, scores, -np.inf)
        top = [i for i in np.argsort(-scores, kind="stable")[:k] if np.isfinite(scores[i])]
        return [Neighbour(ref.texts[i], ref.sources[i], ref.labels[i], float(scores[i])) for i in top]


class ReferenceBuilder:
    """Builds a ReferenceMap in a daemon thread: warm up UMAP, embed the sentences, fit the maps.

    `umap_ready` turns true after the warm-up, `map` is set when everything is done; `status` says
    in words where it stands (also after a failure, which is logged and leaves the app working).
    """

    def __init__(self, load: Callable[[], ReferenceSet], embed: Callable[[list[str]], np.ndarray]):
        self._load = load
        self._embed = embed
        self.umap_ready = False
        self.map: ReferenceMap | None = None
        self.status = "reference map: not started"
        self.timings: dict[str, float] = {}
        self._thread = threading.Thread(target=self._run, name="reference-map", daemon=True)

    def start(self) -> "ReferenceBuilder":
        self._thread.start()
        return self

    def wait(self, timeout_s: float) -> bool:
        """Block until the map is built (or building failed) or timeout_s passed; True when it is ready."""
        self._thread.join(timeout_s)
        return self.map is not None

    def _timed(self, step: str, fn: Callable):
        start = time.perf_counter()
        result = fn()
        self.timings[step] = round(time.perf_counter() - start, 2)
        return result

    def _run(self) -> None:
        try:
            self.status = "reference map: compiling UMAP (first use takes a while)"
            self._timed("umap_warm_up_s", warm_up)
            self.umap_ready = True
            refset = self._load()
            self.status = f"reference map: embedding {len(refset)} reference sentences"
            embeddings = self._timed("embed_s", lambda: self._embed(refset.texts))
            self.status = f"reference map: fitting UMAP on {len(refset)} sentences"
            self.map = self._timed("fit_s", lambda: ReferenceMap.fit(refset, embeddings))
            self.status = f"reference map ready ({refset.origin})"
            log.info("reference map ready: %s (timings %s)", refset.origin, self.timings)
        except Exception:  # a broken reference set must not take the app down; the log has the cause
            log.exception("building the reference map failed")
            self.status = "reference map unavailable (building it failed; see the server log)"
