"""Word explanations ("why this label?") on the tiny random model: words laid over the typed text, each
method checked against a computation made here another way, and the faithfulness benchmark's quick run."""
from __future__ import annotations

import json

import pytest
import torch
from test_model import SENTENCES, make_model

from benchmarks.explain import top_count
from mtl_core.model.encoder import bundled_backbone_path
from mtl_core.model.explain import METHODS, explain, segment_words

from conftest import DATA_DIR, run_quick_benchmark

QUICK_TIMEOUT_S = 300  # ~15 s on an idle 2-core machine; generous for a busy one
TEXT = "where is my new card? it hasn't arrived (yet)"

WORDS = [
    ("I don't know my PIN?", ["I", "don't", "know", "my", "PIN", "?"]),
    ("Café crème 😀 is unbelievably good!", ["Café", "crème", "😀", "is", "unbelievably", "good", "!"]),
    ("(card) 'lost' e-mail hello... $20.00 #tag @user",
     ["(", "card", ")", "'", "lost", "'", "e-mail", "hello", "...", "$20.00", "#tag", "@user"]),
    # decomposed accents; characters the tokenizer drops (variation selector, zero-width space and joiner)
    ("  e\u0301te\u0301\tgreat!!! 😀😀\n?!", ["e\u0301te\u0301", "great", "!!!", "😀😀", "?!"]),
    ("I \u2764\ufe0f it 👍🏽, \u200bok\u200d", ["I", "\u2764\ufe0f", "it", "👍🏽", ",", "\u200bok\u200d"]),
    ("", []),
]


def assert_laid_over(text, words, spans):
    """Each word is its span of the text, in order, and only whitespace lies between them."""
    assert [text[s:e] for s, e in spans] == words
    edges = [0] + [x for span in spans for x in span] + [len(text)]
    gaps = [text[a:b] for a, b in zip(edges[::2], edges[1::2])]
    assert all(a <= b for a, b in zip(edges, edges[1:])) and all(not g.strip() for g in gaps)


@pytest.mark.parametrize("text, expected", WORDS)
def test_words_are_the_typed_words_laid_over_the_text(tiny_encoder, text, expected):
    words = segment_words(tiny_encoder, text)
    assert words.words == expected
    assert_laid_over(text, words.words, words.spans)
    assert words.ids == tiny_encoder.tokenize_ids([text]).ids[0] and not words.truncated


def test_a_word_of_several_pieces_owns_all_of_them(tiny_encoder):
    words = segment_words(tiny_encoder, "Café crème is unbelievably good")
    pieces = words.pieces[words.words.index("unbelievably")]
    assert len(pieces) > 1
    assert tiny_encoder.tokenizer.decode([words.ids[p] for p in pieces]) == "unbelievably"
    assert sorted(p for w in words.pieces for p in w) == list(range(1, len(words.ids) - 1))  # every piece, once


def test_without_and_only_keep_cls_and_sep(tiny_encoder):
    words = segment_words(tiny_encoder, "I don't know")  # [CLS] i don ' t know [SEP]
    cls, sep = words.ids[0], words.ids[-1]
    assert words.without([1]) == [cls, words.ids[1], words.ids[5], sep]
    assert words.only([2, 0]) == [cls, words.ids[1], words.ids[5], sep]
    assert words.without([]) == words.ids


def test_long_sentence_is_cut_like_prediction_and_a_split_word_is_dropped(tiny_encoder):
    limit = tiny_encoder.max_tokens
    text = "Café 😀 " + "card " * (limit - 5) + "unbelievably " + "card " * 50  # the cut splits "unbelievably"
    words = segment_words(tiny_encoder, text)
    assert words.truncated and len(words.ids) == limit and words.ids == tiny_encoder.tokenize_ids([text]).ids[0]
    assert words.words == ["Café", "😀"] + ["card"] * (limit - 5)
    assert [text[s:e] for s, e in words.spans] == words.words
    assert max(p for w in words.pieces for p in w) == limit - 3  # the split word's first piece is unscored

    model = make_model(tiny_encoder)
    for method in ("occlusion", "integrated_gradients"):
        e, = explain(model, tiny_encoder, [text], "sentiment", method=method, steps=8)
        assert e.truncated and len(e.scores) == len(e.words) == limit - 3
    assert e.rest != 0 and abs(sum(e.scores) + e.rest - e.gap) < 1e-3  # the split word's piece is in `rest`


@pytest.mark.parametrize("task_layers", [0, 1, 2])
def test_logits_from_embeddings_equal_forward(tiny_encoder, task_layers):
    model = make_model(tiny_encoder, task_layers)
    batch = tiny_encoder.tokenize(SENTENCES)  # padded: the mask must be honoured
    embeddings = tiny_encoder.bert.embeddings(input_ids=batch["input_ids"])
    out = model(**batch)
    for task in model.task_names:
        torch.testing.assert_close(model.logits_from_embeddings(embeddings, batch["attention_mask"], task),
                                   out.logits[task], atol=1e-6, rtol=0)


def probability_by_hand(model, encoder, text, task, label):
    with torch.no_grad():
        logits = model(**encoder.tokenize([text]), tasks=[task]).logits[task]
    return float(model.probabilities(task, logits)[0, label])


@pytest.mark.parametrize("task_layers", [0, 1])
def test_occlusion_is_the_probability_drop_without_the_word(tiny_encoder, task_layers):
    model = make_model(tiny_encoder, task_layers)
    e, = explain(model, tiny_encoder, [TEXT], "intent", method="occlusion")
    label = model.config.head("intent").labels.index(e.label)
    full = probability_by_hand(model, tiny_encoder, TEXT, "intent", label)
    assert e.probability == pytest.approx(full, abs=1e-6) and e.unit == "probability"
    assert e.words == ["where", "is", "my", "new", "card", "?", "it", "hasn't", "arrived", "(", "yet", ")"]
    for word, (start, end), score in zip(e.words, e.spans, e.scores):
        cut = TEXT[:start] + TEXT[end:]  # the text itself without the word, tokenized afresh
        assert score == pytest.approx(full - probability_by_hand(model, tiny_encoder, cut, "intent", label),
                                      abs=1e-5), word
    assert max(map(abs, e.scores)) > 1e-4  # the comparison above is not between zeros


def completeness_error(model, encoder, steps):
    e, = explain(model, encoder, [TEXT], "sentiment", method="integrated_gradients", steps=steps)
    return e, abs(sum(e.scores) + e.rest - e.gap)


@pytest.mark.parametrize("task_layers", [0, 2])
def test_integrated_gradients_add_up_to_the_logit_gap(tiny_encoder, task_layers):
    model = make_model(tiny_encoder, task_layers)
    e, error_64 = completeness_error(model, tiny_encoder, 64)
    _, error_4 = completeness_error(model, tiny_encoder, 4)
    # The gap computed here, from ids: the text vs every word piece replaced by [PAD].
    ids = tiny_encoder.tokenize_ids([TEXT]).ids[0]
    baseline = [ids[0]] + [tiny_encoder.tokenizer.pad_token_id] * (len(ids) - 2) + [ids[-1]]
    with torch.no_grad():
        logits = model(**tiny_encoder.collate([ids, baseline]), tasks=["sentiment"]).logits["sentiment"]
    label = model.config.head("sentiment").labels.index(e.label)
    assert e.gap == pytest.approx(float(logits[0, label] - logits[1, label]), abs=1e-5)
    assert abs(e.gap) > 1e-3 and e.rest == 0.0 and e.unit == "logit"  # [CLS]/[SEP] equal the baseline's
    assert error_64 < 1e-4 * max(1.0, abs(e.gap)) and error_4 > error_64  # more steps, closer


def test_gradient_x_input_is_the_first_order_change(tiny_encoder):
    """Moving one word's embeddings a small step eps towards the baseline changes the logit by ~eps * score."""
    model = make_model(tiny_encoder, 1)
    e, = explain(model, tiny_encoder, [TEXT], "intent", method="gradient_x_input")
    words = segment_words(tiny_encoder, TEXT)
    label = model.config.head("intent").labels.index(e.label)
    ids = torch.tensor([words.ids])
    pads = torch.full_like(ids, tiny_encoder.tokenizer.pad_token_id)
    pads[0, 0], pads[0, -1] = ids[0, 0], ids[0, -1]
    with torch.no_grad():
        x, base = tiny_encoder.bert.embeddings(input_ids=torch.cat([ids, pads]))
        mask, eps = torch.ones_like(ids), 1e-2
        for i in (words.words.index("card"), words.words.index("hasn't")):
            moved = x.clone()
            moved[words.pieces[i]] -= eps * (x - base)[words.pieces[i]]
            logits = model.logits_from_embeddings(torch.stack([x, moved]), mask.expand(2, -1), "intent")[:, label]
            assert float(logits[0] - logits[1]) / eps == pytest.approx(e.scores[i], rel=0.05, abs=1e-4)


def test_explains_a_label_that_is_not_the_top_one(tiny_encoder):
    model = make_model(tiny_encoder)
    labels = model.config.head("sentiment").labels
    top, = explain(model, tiny_encoder, [TEXT], "sentiment")
    other = next(label for label in labels if label != top.label)
    e, = explain(model, tiny_encoder, [TEXT], "sentiment", label=other)
    index = labels.index(other)
    assert e.label == other and e.probability == pytest.approx(
        probability_by_hand(model, tiny_encoder, TEXT, "sentiment", index), abs=1e-6)
    assert e.probability < top.probability and e.scores != top.scores
    start, end = e.spans[0]
    cut = TEXT[:start] + TEXT[end:]
    assert e.scores[0] == pytest.approx(
        e.probability - probability_by_hand(model, tiny_encoder, cut, "sentiment", index), abs=1e-5)


def test_gradient_methods_work_inside_inference_mode(tiny_encoder):
    model = make_model(tiny_encoder, 1)
    expected, = explain(model, tiny_encoder, [TEXT], "intent", method="integrated_gradients", steps=8)
    with torch.inference_mode():
        got, = explain(model, tiny_encoder, [TEXT], "intent", method="integrated_gradients", steps=8)
    assert got.scores == pytest.approx(expected.scores, abs=1e-6)


def test_every_method_gives_one_score_per_word_and_json(tiny_encoder):
    model = make_model(tiny_encoder)
    for method in METHODS:
        e, empty = explain(model, tiny_encoder, [TEXT, ""], "sentiment", method=method, steps=4)
        assert len(e.scores) == len(e.words) == 12 and all(isinstance(x, float) for x in e.scores)
        assert empty.words == empty.scores == [] and 0 < empty.probability < 1
        record = json.loads(json.dumps(e.to_api()))
        assert record["method"] == method and record["label"] == e.label
        assert [(w["word"], w["start"], w["end"]) for w in record["words"]] == [
            (w, s, t) for w, (s, t) in zip(e.words, e.spans)]


def test_bad_requests_list_the_valid_options(tiny_encoder):
    model = make_model(tiny_encoder)
    with pytest.raises(ValueError, match=r"unknown task 'ner'; valid: \['intent', 'sentiment'\]"):
        explain(model, tiny_encoder, [TEXT], "ner")
    with pytest.raises(ValueError, match=r"unknown label 'happy' .*valid: \['negative', 'neutral', 'positive'\]"):
        explain(model, tiny_encoder, [TEXT], "sentiment", label="happy")
    with pytest.raises(ValueError, match=r"valid: \['occlusion', 'integrated_gradients', 'gradient_x_input'\]"):
        explain(model, tiny_encoder, [TEXT], "sentiment", method="lime")
    with pytest.raises(ValueError, match="steps must be >= 1"):
        explain(model, tiny_encoder, [TEXT], "sentiment", method="integrated_gradients", steps=0)
    with pytest.raises(TypeError, match="wrap it"):
        explain(model, tiny_encoder, TEXT, "sentiment")
    with pytest.raises(ValueError, match="model.eval"):
        explain(model.train(), tiny_encoder, [TEXT], "sentiment")


@pytest.mark.parametrize("num_words, percent, expected", [(1, 10, 1), (4, 10, 1), (10, 20, 2), (7, 50, 4)])
def test_top_k_is_rounded_and_at_least_one_word(num_words, percent, expected):
    assert top_count(num_words, percent) == expected


@pytest.mark.integration
def test_quick_explain_benchmark_writes_sane_results(tmp_path):
    if bundled_backbone_path() is None or not (DATA_DIR / "intent" / "test.csv").is_file():
        pytest.skip("needs the bundled all-MiniLM-L6-v2 and the data folder")
    out = tmp_path / "explain.json"
    done = run_quick_benchmark("benchmarks.explain", out, QUICK_TIMEOUT_S)
    results = json.loads(out.read_text())
    assert results["quick"] is True and set(results["tasks"]) == {"intent", "sentiment"}
    for task, summary in results["tasks"].items():
        assert set(summary) == {*METHODS, "random"}, task
        for method, s in summary.items():
            for metric in ("comprehensiveness", "sufficiency"):
                assert set(s[metric]) == {"10", "20", "50", "aopc"}
                assert all(-1 <= v <= 1 for v in s[metric].values()), (task, method, metric)
            if method != "random":
                assert 0 < s["ms_per_sentence"]["p50"] <= s["ms_per_sentence"]["p95"]
        assert summary["integrated_gradients"]["completeness_error"]["max"] < 0.1, task
    assert "| intent | occlusion |" in done.stdout
