"""The files a request offers for download: the predictions as results.csv (the predict command's columns)
and the embeddings as .npy and .csv, each set in its own scratch folder (Downloads)."""
from __future__ import annotations

import csv
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from mtl_core.serving.analysis import Analysis
from mtl_core.serving.inputs import spreadsheet_safe
from mtl_core.serving.records import write_csv

DOWNLOAD_MAX_AGE_S = 600  # Gradio copies returned files into its own cache at once; ours can go soon


class Downloads:
    """Scratch folders for the files a request offers, under one fixed root shared by all app processes
    (so restarts leave nothing behind); folders older than DOWNLOAD_MAX_AGE_S are pruned on each use."""

    def __init__(self) -> None:
        self._root = Path(tempfile.gettempdir()) / "mtl_app_downloads"
        self._root.mkdir(exist_ok=True)

    def new_folder(self) -> Path:
        cutoff = time.time() - DOWNLOAD_MAX_AGE_S
        for old in self._root.iterdir():
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(dir=self._root))


def write_embeddings_csv(texts: list[str], embeddings: np.ndarray, path: Path) -> None:
    """One row per sentence: its text, then e0..e383."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text"] + [f"e{j}" for j in range(embeddings.shape[1])])
        # float32 carries about 7 significant digits; more would only add noise and size
        rows = zip(texts, embeddings, strict=True)
        writer.writerows([spreadsheet_safe(t), *(f"{v:.7g}" for v in vector)] for t, vector in rows)


def write_downloads(analysis: Analysis, folder: Path) -> list[Path]:
    """results.csv (the predict command's columns), embeddings.npy and embeddings.csv, in `folder`."""
    paths = [folder / "results.csv", folder / "embeddings.npy", folder / "embeddings.csv"]
    write_csv(analysis.predictions, analysis.labels, paths[0], analysis.results.scoped_heads)
    np.save(paths[1], analysis.embeddings)
    write_embeddings_csv(analysis.texts, analysis.embeddings, paths[2])
    return paths
