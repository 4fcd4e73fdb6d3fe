"""The running app driven through gradio_client: every named endpoint, good and bad input."""
from __future__ import annotations

import numpy as np
import pytest
from gradio_client.exceptions import AppError

from conftest import rest_call

pytest_plugins = ["app_server"]
pytestmark = [pytest.mark.app, pytest.mark.integration]

ENDPOINTS = {"/analyse": ["text", "order", "dims", "reference"], "/predict": ["text"], "/embed": ["text"],
             "/similarity": ["text", "order"], "/projection": ["text", "dims", "reference"],
             "/search": ["text", "query", "k"], "/explain": ["text", "task", "label"]}
SENTENCES = ["My card still hasn't arrived.", "I love this app!", "Why was I charged twice?"]
HTML = '<script>alert("x")</script><img src=x onerror=alert(1)> & <b>bold</b>'


def lines(sentences: list[str]) -> str:
    return "\n".join(sentences)


def test_api_lists_the_named_endpoints_with_text_first_and_defaults(client):
    info = client.view_api(print_info=False, return_format="dict")
    named = info["named_endpoints"]
    assert set(ENDPOINTS) <= set(named), sorted(named)
    for name, params in ENDPOINTS.items():
        assert [p["parameter_name"] for p in named[name]["parameters"]] == params
        assert all(p["parameter_has_default"] for p in named[name]["parameters"][1:])
    assert not info.get("unnamed_endpoints")  # UI plumbing stays private


def test_predict_returns_a_record_per_sentence(client):
    long_sentence = " ".join(["word"] * 400)
    records = client.predict(lines(SENTENCES + [long_sentence]), api_name="/predict")
    assert [r["text"] for r in records] == SENTENCES + [long_sentence]
    for r in records:
        assert 0.0 <= r["intent"]["score"] <= 1.0 and len(r["intent"]["top"]) == 5
        assert r["intent"]["top"][0][0] == r["intent"]["closest"]
        assert sum(r["sentiment"]["probs"].values()) == pytest.approx(1.0, abs=1e-4)
        assert set(r["sentiment"]["probs"]) == {"negative", "neutral", "positive"}
    assert [r["truncated"] for r in records] == [False, False, False, True]
    for r in records:  # the shipped checkpoint has an out-of-scope detector: every record carries its decision
        assert isinstance(r["intent"]["in_scope"], bool) and isinstance(r["intent"]["scope_score"], float)
        assert r["intent"]["label"] == (r["intent"]["closest"] if r["intent"]["in_scope"] else "none")
        assert "in_scope" not in r["sentiment"] and "closest" not in r["sentiment"]
    assert records[0]["intent"]["label"] == "card_arrival" and records[1]["intent"]["label"] == "none"  # "I love this app!"
    out_of_scope = client.predict("Who painted the Mona Lisa?", api_name="/analyse")["predictions"][0]["intent"]
    assert out_of_scope["in_scope"] is False and out_of_scope["label"] == "none"  # as the CSV says it
    assert out_of_scope["closest"] == out_of_scope["top"][0][0] and out_of_scope["score"] == out_of_scope["top"][0][1]


def test_analyse_returns_every_view_from_one_call(client):
    out = client.predict(lines(SENTENCES), "cluster", api_name="/analyse")
    alone = client.predict(lines(SENTENCES), api_name="/predict")
    assert [r["text"] for r in out["predictions"]] == SENTENCES
    for mine, single in zip(out["predictions"], alone, strict=True):
        assert mine["intent"]["label"] == single["intent"]["label"]
        assert mine["sentiment"]["score"] == pytest.approx(single["sentiment"]["score"], abs=1e-5)
    assert sorted(out["similarity"]["order"]) == [0, 1, 2]
    assert np.asarray(out["similarity"]["matrix"]).shape == (3, 3)
    assert out["projection"]["texts"] == SENTENCES and np.asarray(out["projection"]["coords"]).shape == (3, 2)


def test_analyse_similarity_is_capped_like_the_heatmap(client):
    from mtl_core.serving.analysis import HEATMAP_MAX

    text = lines([f"question number {i} about my card" for i in range(HEATMAP_MAX + 1)])
    out = client.predict(text, api_name="/analyse")
    assert len(out["predictions"]) == HEATMAP_MAX + 1
    assert np.asarray(out["similarity"]["matrix"]).shape == (HEATMAP_MAX, HEATMAP_MAX)
    assert len(out["projection"]["coords"]) == HEATMAP_MAX + 1


def test_embed_returns_unit_vectors_in_input_order(client):
    out = client.predict(lines(SENTENCES), api_name="/embed")
    vectors = np.asarray(out["embeddings"])
    assert out["texts"] == SENTENCES and vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_similarity_matrix_and_cluster_order(client):
    out = client.predict(lines(SENTENCES), api_name="/similarity")
    matrix = np.asarray(out["matrix"])
    assert out["order"] == [0, 1, 2] and matrix.shape == (3, 3)
    np.testing.assert_allclose(matrix, matrix.T, atol=1e-4)
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-3)
    clustered = client.predict(lines(SENTENCES), "cluster", api_name="/similarity")
    assert sorted(clustered["order"]) == [0, 1, 2]
    assert clustered["texts"] == [SENTENCES[i] for i in clustered["order"]]


def test_projection_lands_on_the_reference_map_once_it_is_ready(client, reference_ready):
    out = client.predict(lines(SENTENCES), api_name="/projection")
    assert out["method"].startswith("UMAP reference map") and "transform" in out["method"], out["note"]
    assert np.asarray(out["coords"]).shape == (3, 2)


@pytest.mark.parametrize("n, expected", [(1, "no projection"), (2, "PCA"), (9, "UMAP")])
def test_projection_of_own_sentences_names_its_method(client, reference_ready, n, expected):
    text = lines([f"{s} (variant {i})" for i, s in zip(range(n), SENTENCES * 3, strict=False)])
    out = client.predict(text, 3, False, api_name="/projection")
    assert np.asarray(out["coords"]).shape == (n, 3)
    assert out["method"].startswith(expected), out["method"]


def test_explain_returns_word_scores_for_the_label(client):
    [record] = client.predict("How do I change my PIN?", "intent", api_name="/explain")
    assert record["label"] == "change_pin" and record["method"] == "occlusion"
    words = [w["word"] for w in record["words"]]
    assert words == ["How", "do", "I", "change", "my", "PIN", "?"]
    text = "How do I change my PIN?"
    assert all(text[w["start"]:w["end"]] == w["word"] for w in record["words"])
    [other] = client.predict(text, "intent", "card_arrival", api_name="/explain")
    assert other["label"] == "card_arrival" and other["probability"] < record["probability"]


@pytest.mark.parametrize("task, label, message", [("topic", "", "intent"), ("intent", "no_such_label", "card_arrival"),
                                                  ("sentiment", "angry", "negative")])
def test_explain_bad_task_or_label_lists_the_valid_ones(client, task, label, message):
    with pytest.raises(AppError, match=message):
        client.predict("hello", task, label, api_name="/explain")
    with pytest.raises(AppError, match="at most 20"):
        client.predict("x\n" * 21, api_name="/explain")


def test_search_finds_the_closest_sentence(client):
    hits = client.predict("\n".join(SENTENCES), "where is my card", 2, api_name="/search")
    assert len(hits) == 2 and hits[0]["cosine"] >= hits[1]["cosine"]
    assert any(h["text"] == SENTENCES[0] for h in hits) or hits[0]["source"] == "reference"


@pytest.mark.parametrize("text, message", [("", "no sentences"), (" \n\t\n", "no sentences"),
                                           ("x\n" * 2001, "at most 2,000")])
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_bad_input_is_a_clear_error(client, endpoint, text, message):
    with pytest.raises(AppError, match=message):
        client.predict(text, api_name=endpoint)


def test_bad_options_are_clear_errors(client):
    with pytest.raises(AppError, match="order must be"):
        client.predict("a", "sideways", api_name="/similarity")
    with pytest.raises(AppError, match="dims must be 2 or 3"):
        client.predict("a", 4, api_name="/projection")
    with pytest.raises(AppError, match="dims must be 2 or 3"):
        client.predict("a", "input", 1, api_name="/analyse")


def test_html_and_odd_characters_come_back_as_plain_text(client, app_url):
    odd = "nul\x00 bell\x07 rtl\u202e emoji \U0001f600 zero\u200bwidth"
    records = client.predict(lines([HTML, odd]), api_name="/predict")
    assert records[0]["text"] == HTML  # stored and returned verbatim, never interpreted
    assert records[1]["text"] == odd
    # A lone surrogate cannot even be encoded by gradio_client; send the JSON escape by hand.
    stream = rest_call(app_url, "/predict", b'{"data": ["lone \\ud800 surrogate"]}')
    assert "event: complete" in stream and "lone ? surrogate" in stream


def test_server_still_serves_after_bad_requests(client):
    for bad in ("", "x\n" * 2001):
        with pytest.raises(AppError):
            client.predict(bad, api_name="/predict")
    assert client.predict("still here?", api_name="/predict")[0]["text"] == "still here?"
