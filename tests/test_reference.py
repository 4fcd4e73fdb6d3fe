"""Reference sets, nearest neighbours and the app's request helpers, without model weights or UMAP fits."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from mtl_core.errors import InputError
from mtl_core.serving.inputs import sentences_from_file, sentences_from_text
from mtl_core.serving.maps import MapView, map_view
from mtl_core.serving.records import readable_label
from mtl_core.serving.reference import (
    SHIPPED_REFERENCE,
    ReferenceBuilder,
    ReferenceMap,
    ReferenceSet,
    from_csv,
    load_reference_set,
)
from mtl_core.settings import MAX_SENTENCES


def test_shipped_reference_covers_every_intent_and_sentiment():
    refset = from_csv(SHIPPED_REFERENCE)
    intents = {y for s, y in zip(refset.sources, refset.labels, strict=True) if s == "intent"}
    sentiments = Counter(y for s, y in zip(refset.sources, refset.labels, strict=True) if s == "sentiment")
    assert len(intents) == 77 and set(sentiments) == {"negative", "neutral", "positive"}
    assert min(sentiments.values()) >= 25 and len(set(refset.texts)) == len(refset)


def test_reference_from_data_dir_is_stratified_and_seeded(tiny_data_dir, monkeypatch):
    monkeypatch.delenv("MTL_DATA_DIR", raising=False)
    first, second = load_reference_set(tiny_data_dir), load_reference_set(tiny_data_dir)
    assert first == second  # seeded sample
    counts = Counter(zip(first.sources, first.labels, strict=True))
    assert set(counts) == {("intent", "card_arrival"), ("intent", "lost_or_stolen_card"), ("intent", "exchange_rate"),
                           ("sentiment", "negative"), ("sentiment", "neutral"), ("sentiment", "positive")}
    assert first.origin.endswith("training sentences from the data folder") and str(tiny_data_dir) not in first.origin
    assert load_reference_set(None).origin.endswith("(reference_sentences.csv)")


def test_nearest_returns_highest_cosine_first():
    refset = ReferenceSet(["east", "north", "west"], ["intent"] * 3, ["e", "n", "w"], "test")
    embeddings = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    ref = ReferenceMap(refset, embeddings, models={})
    query = np.array([0.6, 0.8])
    top = ref.nearest(query, k=2)
    assert [n.text for n in top] == ["north", "east"]
    assert top[0].cosine == pytest.approx(0.8) and top[0].label == "n"


def test_readable_label_names():
    assert readable_label("card_arrival") == "Card arrival"
    assert readable_label("atm_support") == "ATM support"
    assert readable_label("Refund_not_showing_up") == "Refund not showing up"
    assert readable_label("apple_pay_or_google_pay") == "Apple pay or Google pay"


def test_sentences_from_text_limits_and_cleaning():
    assert sentences_from_text("  one \n\n two\r\nthree ") == ["one", "two", "three"]
    assert sentences_from_text("bad \ud800 surrogate") == ["bad ? surrogate"]
    for empty in ("", "  \n \n", None):
        with pytest.raises(InputError, match="no sentences"):
            sentences_from_text(empty)
    assert len(sentences_from_text("x\n" * MAX_SENTENCES)) == MAX_SENTENCES
    with pytest.raises(InputError, match="at most 2,000"):
        sentences_from_text("x\n" * (MAX_SENTENCES + 1))


def test_sentences_from_file_flattens_csv_cells_and_reports_bad_files(tmp_path):
    good = tmp_path / "reviews.csv"
    good.write_text('text,stars\n"two\nlines",5\nplain,1\n', encoding="utf-8")
    assert sentences_from_file(good) == ["two lines", "plain"]
    binary = tmp_path / "data.txt"
    binary.write_bytes(b"\x00\x01\x02")
    with pytest.raises(InputError, match="binary"):
        sentences_from_file(binary)
    big = tmp_path / "big.txt"
    big.write_text("s\n" * (MAX_SENTENCES + 1))
    with pytest.raises(InputError, match="big.txt has 2,001 sentences"):
        sentences_from_file(big)


class NotReady(ReferenceBuilder):
    def __init__(self, umap_ready: bool):
        super().__init__(load=lambda: None, embed=lambda texts: None)
        self.umap_ready = umap_ready
        self.status = "reference map: embedding 10 reference sentences"


def test_map_view_falls_back_and_says_why():
    x = np.eye(12, 16)  # 12 distinct points: enough for UMAP, so PCA below is chosen only because UMAP is not ready
    view = map_view(x, 2, NotReady(umap_ready=False), use_reference=True)
    assert isinstance(view, MapView) and not view.final
    assert "warming up" in view.projection.method and "not ready" in view.note and "embedding 10" in view.note
    own = map_view(x[:4], 3, None, use_reference=False)
    assert own.final and own.reference_coords is None and own.projection.coords.shape == (4, 3)
