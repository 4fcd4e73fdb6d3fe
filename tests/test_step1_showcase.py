"""README's Step 1 block: equal to benchmarks/step1_results.json rendered, and the JSON equal to a fresh run.

Nothing here writes a tracked file: the README block is compared as a string, and the numbers are
recomputed in memory (benchmarks/step1_check.py's functions, not its main()).
"""
import json

import numpy as np
import pytest
import torch

from benchmarks import step1_check
from benchmarks.output import generated_block, replace_generated
from mtl_core.data.loading import read_texts
from mtl_core.model.encoder import SentenceEncoder, l2_normalize
from tests.conftest import DATA_DIR, ROOT

RESULTS = json.loads((ROOT / "benchmarks" / "step1_results.json").read_text(encoding="utf-8"))
REGENERATE = "rerun `python -m benchmarks.step1_check` (it rewrites the JSON and the README block)"


def within_rounding(recomputed, recorded, decimals: int) -> None:
    """`recomputed` (full precision) rounds to `recorded`, allowing for a value that sits on a rounding edge."""
    np.testing.assert_allclose(recomputed, recorded, rtol=0, atol=0.5 * 10 ** -decimals + 1e-6, err_msg=REGENERATE)


def test_readme_block_is_the_rendered_json():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert generated_block(readme, step1_check.BLOCK) == step1_check.render_markdown(RESULTS), REGENERATE


def test_json_has_the_scripts_samples_and_command():
    assert [s["sentence"] for s in RESULTS["samples"]] == step1_check.SAMPLES, REGENERATE
    assert RESULTS["command"] == "python -m benchmarks.step1_check" and RESULTS["precision"] == "fp32"
    assert "python -m benchmarks.step1_check" in step1_check.render_markdown(RESULTS)


def test_generated_block_replacement_keeps_the_rest():
    text = "intro\n<!-- generated:x -->\nold\n<!-- /generated -->\noutro\n"
    new = replace_generated(text, "x", "new\nlines\n")
    assert new == "intro\n<!-- generated:x -->\nnew\nlines\n<!-- /generated -->\noutro\n"
    assert generated_block(new, "x") == "new\nlines" and replace_generated(new, "x", "old") == text
    with pytest.raises(ValueError, match="generated:y"):
        replace_generated(text, "y", "body")


@pytest.fixture(scope="module")
def encoder():
    return SentenceEncoder.load()  # fp32


@pytest.mark.integration
def test_samples_recomputed_match_the_json(encoder):
    vectors = encoder.encode([s["sentence"] for s in RESULTS["samples"]])  # (N, 384)
    assert [s["dim"] for s in RESULTS["samples"]] == [vectors.shape[1]] * len(vectors)
    within_rounding(vectors[:, :step1_check.FIRST], [s["first_values"] for s in RESULTS["samples"]], 4)
    within_rounding(np.linalg.norm(vectors, axis=1), [s["norm"] for s in RESULTS["samples"]], 6)
    within_rounding(vectors @ vectors.T, RESULTS["cosine"], 3)


@pytest.mark.integration
@torch.inference_mode()
def test_batched_pooling_equals_each_sentence_alone_with_the_long_one(encoder):
    """pooled_with_long pools k sentences in one batch with LONG; the same as k batches [sentence, LONG]."""
    sentences = step1_check.SAMPLES[:3]
    masked, unmasked = step1_check.pooled_with_long(encoder, sentences, batch_size=2)  # batches of 2 + LONG
    for i, sentence in enumerate(sentences):
        np.testing.assert_allclose(masked[i], encoder.encode([sentence, step1_check.LONG], batch_size=2)[0], atol=1e-5)
        batch = encoder.tokenize([sentence, step1_check.LONG])
        alone = l2_normalize(encoder.hidden_states(**batch).mean(dim=1))[0].numpy()  # the notebook's pooling
        np.testing.assert_allclose(unmasked[i], alone, atol=1e-5)


@pytest.mark.integration
def test_pooling_comparison_recomputed_matches_the_json(encoder):
    pooling = RESULTS["pooling"]
    path = DATA_DIR / pooling["data"]
    if not path.is_file():
        pytest.skip(f"no {pooling['data']} under {DATA_DIR} (set MTL_DATA_DIR): the pooling comparison needs the data")
    assert step1_check.sha256(path) == pooling["data_sha256"], f"{path} is not the file the JSON was measured on"
    assert len(encoder.tokenize_ids([step1_check.LONG]).ids[0]) == pooling["batch_mate_tokens"]
    texts = read_texts(path)[: pooling["sentences"]]
    recomputed = step1_check.pooling_results(encoder, texts, decimals=None)  # ~15 s on 2 idle cores
    for name in ("unmasked", "masked"):
        for key in ("median_cosine", "min_cosine"):
            within_rounding(recomputed[name][key], pooling[name][key], 4)
