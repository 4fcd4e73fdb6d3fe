"""The app's per-sentence cache: same numbers as a fresh pass, the model skipped for known sentences."""
import numpy as np

from mtl_core.serving.predictor import Predictor, SentenceCache

SENTENCES = ["my card is lost", "great app", "where is my money?", "great app"]


def count_forward_sentences(predictor: Predictor) -> list[int]:
    """Wrap the model call to record how many sentences each call of the model gets."""
    seen, forward = [], predictor._forward

    def counting(texts, *args):
        seen.append(len(texts))
        return forward(texts, *args)

    predictor._forward = counting
    return seen


def test_cached_results_equal_a_fresh_pass(tiny_checkpoint):
    plain = Predictor.load(tiny_checkpoint).run(SENTENCES)
    cached = Predictor.load(tiny_checkpoint)
    cached.cache = SentenceCache()
    cached.run(SENTENCES[:2])  # warm part of the cache
    results = cached.run(SENTENCES)
    np.testing.assert_allclose(results.embeddings, plain.embeddings, atol=1e-5)
    for task in plain.probs:
        np.testing.assert_allclose(results.probs[task], plain.probs[task], atol=1e-5)
    assert results.texts == SENTENCES


def test_known_and_duplicated_sentences_skip_the_model(tiny_checkpoint):
    predictor = Predictor.load(tiny_checkpoint)
    predictor.cache = SentenceCache()
    seen = count_forward_sentences(predictor)
    predictor.run(SENTENCES)  # 4 sentences, 3 distinct
    predictor.embed(SENTENCES[1:3])  # all known
    predictor.run(["a new one", "great app"])  # one new
    assert [n for n in seen if n] == [3, 1]


def test_cache_keeps_only_the_most_recent(tiny_checkpoint):
    predictor = Predictor.load(tiny_checkpoint)
    predictor.cache = SentenceCache(max_items=2)
    predictor.run(["one", "two"])
    predictor.run(["one"])  # "one" is now the most recent
    predictor.run(["three"])  # evicts "two"
    seen = count_forward_sentences(predictor)
    predictor.run(["one", "two", "three"])
    assert len(predictor.cache) == 2 and seen == [1]


def test_empty_input_gives_empty_results(tiny_checkpoint):
    predictor = Predictor.load(tiny_checkpoint)
    predictor.cache = SentenceCache()
    results = predictor.run([])
    assert results.embeddings.shape[0] == 0 and results.probs["intent"].shape[0] == 0
