"""Real all-MiniLM-L6-v2 weights (bundled package) and the real data ($MTL_DATA_DIR, else data/)."""
import numpy as np
import pytest

from mtl_core.data.loading import read_texts
from mtl_core.model.encoder import SentenceEncoder, bundled_backbone_path
from tests.conftest import DATA_DIR

pytestmark = pytest.mark.integration

SAMPLES = ["It CAN take a while for the points to collect",
           "Fetch Rewards is a game-changer for shoppers!",
           "I guess over the years since more people started using Fetch, they make it hard to get gift cards."]


@pytest.fixture(scope="module")
def encoder():
    return SentenceEncoder.load()


@pytest.fixture(scope="module")
def intent_test_texts():
    path = DATA_DIR / "intent" / "test.csv"
    if not path.is_file():
        pytest.skip(f"no data folder at {DATA_DIR} (set MTL_DATA_DIR)")
    return read_texts(path)


def test_matches_sentence_transformers_on_every_intent_test_sentence(encoder, intent_test_texts):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(bundled_backbone_path(), device="cpu")
    expected = reference.encode(intent_test_texts, batch_size=64, normalize_embeddings=True)
    ours = encoder.encode(intent_test_texts, batch_size=64)
    cosine = (ours * expected).sum(axis=1)
    assert len(cosine) == 3080 and cosine.min() >= 0.99999, f"worst cosine {cosine.min()}"


def test_sentence_alone_vs_batched_with_a_200_token_sentence(encoder):
    long = " ".join(["please check the status of my international transfer"] * 25)
    assert len(encoder.tokenize_ids([long]).ids[0]) >= 200
    for sentence in SAMPLES:
        alone = encoder.encode([sentence])[0]
        batched = encoder.encode([sentence, long], batch_size=2)[0]
        assert np.abs(alone - batched).max() <= 1e-5


def test_step1_samples_encode_to_384_unit_numbers(encoder):
    vectors = encoder.encode(SAMPLES)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    documented = [[-0.0403, -0.0372, -0.0328], [-0.1275, 0.0535, 0.0011], [-0.1356, 0.0244, 0.0259]]
    np.testing.assert_allclose(vectors[:, :3], documented, atol=1e-4)  # the values the README shows


@pytest.fixture(scope="module")
def shipped():
    from mtl_core.serving.predictor import Predictor

    return Predictor.load()  # the default: assets/checkpoint


def test_shipped_checkpoint_predicts_obvious_sentences(shipped):
    assert shipped.trained
    records = shipped.predict(["I love this!", "my card hasn't arrived yet",
                               "This is the worst service ever, I am furious.", "I lost my card yesterday"])
    assert records[0]["sentiment"].label == "positive"
    assert records[1]["intent"].label == "card_arrival"
    assert records[2]["sentiment"].label == "negative"
    assert records[3]["intent"].label == "lost_or_stolen_card"


def test_shipped_checkpoint_is_small_and_documented():
    from mtl_core.settings import DEFAULT_CHECKPOINT

    files = {p.name: p.stat().st_size for p in DEFAULT_CHECKPOINT.iterdir() if p.is_file()}
    assert {"config.json", "weights.safetensors", "metrics.json"} <= set(files)
    assert sum(files.values()) <= 30 * 2**20


def test_shipped_checkpoint_rejects_obvious_out_of_scope_sentences_and_accepts_banking_ones(shipped):
    outside = ["What's the weather going to be like in Paris tomorrow?", "Who painted the Mona Lisa?",
               "I love pizza.", "Haha that movie was absolutely hilarious"]
    inside = ["My card still hasn't arrived after two weeks.", "How do I change my PIN?",
              "Why was I charged a fee for taking out cash?", "Can I add my card to Apple Pay?"]
    found = shipped.predict(outside + inside)
    assert [p["intent"].in_scope for p in found] == [False] * len(outside) + [True] * len(inside)
    assert all(p["sentiment"].in_scope is None for p in found)


def word_score(explanation, word: str) -> float:
    return explanation.scores[explanation.words.index(word)]


def test_explanations_point_at_the_words_that_carry_the_label(shipped):
    [love] = shipped.explain(["I love this card"], "sentiment")
    assert love.label == "positive" and word_score(love, "love") > 0
    assert word_score(love, "love") == max(love.scores)
    [pin] = shipped.explain(["How do I change my PIN?"], "intent")
    assert pin.label == "change_pin" and word_score(pin, "PIN") > 0
