import json

import pytest
import torch
from safetensors.torch import save_file

from mtl_core.model.config import HeadConfig, ModelConfig
from mtl_core.model.heads import build_head
from mtl_core.model.model import MultiTaskModel
from mtl_core.tasks import checkpoint
from mtl_core.tasks.checkpoint import CheckpointError

SENTENCES = ["my card has not arrived", "I love this app so much, it is great", "rates?"]


def make_model(encoder, task_layers=0, hidden=0):
    heads = [HeadConfig("intent", [f"i{k}" for k in range(5)], hidden=hidden),
             HeadConfig("sentiment", ["negative", "neutral", "positive"], hidden=hidden)]
    config = ModelConfig(heads=heads, backbone="tiny", task_layers=task_layers, hidden_size=32,
                         num_backbone_layers=2)
    torch.manual_seed(1)
    return MultiTaskModel(encoder, config).eval()


@pytest.mark.parametrize("task_layers", [0, 1, 2])
def test_forward_shapes_and_task_subsets(tiny_encoder, task_layers):
    model = make_model(tiny_encoder, task_layers)
    batch = tiny_encoder.tokenize(SENTENCES)
    out = model(**batch)
    assert out.embeddings.shape == (3, 32)
    assert {k: v.shape for k, v in out.logits.items()} == {"intent": (3, 5), "sentiment": (3, 3)}
    only = model(**batch, tasks=["sentiment"])
    assert list(only.logits) == ["sentiment"]
    torch.testing.assert_close(only.logits["sentiment"], out.logits["sentiment"])


def test_unknown_task_lists_valid_ones(tiny_encoder):
    model = make_model(tiny_encoder)
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['ner'\]; valid: \['intent', 'sentiment'\]"):
        model(**tiny_encoder.tokenize(SENTENCES), tasks=["ner"])


def test_embeddings_are_the_original_encoders_whatever_the_task_layers(tiny_encoder):
    model = make_model(tiny_encoder, task_layers=1)
    with torch.no_grad():
        for p in model.task_layers.parameters():
            p.add_(torch.randn_like(p))  # a "fine-tuned" copy must not change the shown embedding
    batch = tiny_encoder.tokenize(SENTENCES)
    torch.testing.assert_close(model(**batch).embeddings, tiny_encoder(**batch), atol=1e-6, rtol=0)


def test_frozen_model_heads_read_the_shown_embedding(tiny_encoder):
    model = make_model(tiny_encoder, task_layers=0)
    out = model(**tiny_encoder.tokenize(SENTENCES))
    torch.testing.assert_close(out.logits["intent"], model.heads_from_pooled(out.embeddings, ["intent"])["intent"])


@pytest.mark.parametrize("task_layers", [0, 2])
def test_serving_and_training_run_one_computation(tiny_encoder, task_layers):
    """forward() (serving) and heads_from_shared() on the shared states (training, from cached features)
    give the same logits and task vector: one path, not two copies of it."""
    model = make_model(tiny_encoder, task_layers)
    batch = tiny_encoder.tokenize(SENTENCES)
    with torch.no_grad():
        out = model(**batch)
        shared = model.shared_states(**batch)
        torch.testing.assert_close(model.heads_from_shared(shared, batch["attention_mask"]), out.logits)
        torch.testing.assert_close(model.task_vector(shared, batch["attention_mask"]), out.task_vector)
    if task_layers == 0:
        torch.testing.assert_close(out.task_vector, out.embeddings)


def test_loading_trained_weights_refuses_a_mismatch_instead_of_skipping_it(tiny_encoder):
    model = make_model(tiny_encoder, task_layers=1)
    state = checkpoint.trained_state(model)
    checkpoint.load_trained_state(model, state, "weights")  # the trained part, exactly: loads
    missing = {k: v for k, v in state.items() if not k.startswith("heads.sentiment")}
    with pytest.raises(CheckpointError, match=r"weights: missing \['heads.sentiment"):
        checkpoint.load_trained_state(model, missing, "weights")
    with pytest.raises(CheckpointError, match="unexpected"):
        checkpoint.load_trained_state(model, {**state, "heads.topic.weight": torch.zeros(1)}, "weights")


def test_backbone_is_frozen_and_freeze_is_explicit(tiny_encoder):
    model = make_model(tiny_encoder, task_layers=1)
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert all(p.requires_grad for p in model.task_layers.parameters())
    model.freeze("intent")
    assert not any(p.requires_grad for p in model.heads["intent"].parameters())
    assert all(p.requires_grad for p in model.heads["sentiment"].parameters())
    with pytest.raises(ValueError, match="valid"):
        model.freeze("body")


def test_unknown_head_kind_lists_valid_kinds():
    with pytest.raises(ValueError, match=r"valid kinds: \['examples', 'sentence'\]"):
        build_head(HeadConfig("ner", ["O", "B"], kind="token"), 32)


@pytest.mark.parametrize("task_layers, hidden", [(0, 0), (1, 16)])
def test_checkpoint_round_trip_is_exact(tiny_encoder, tmp_path, task_layers, hidden):
    model = make_model(tiny_encoder, task_layers, hidden)
    model.config.head("intent").temperature = 1.7
    checkpoint.save(model, tmp_path)
    loaded = checkpoint.load(tmp_path, tiny_encoder)
    for key, value in checkpoint.trained_state(model).items():
        assert torch.equal(value, checkpoint.trained_state(loaded)[key]), key
    assert loaded.config == model.config
    batch = tiny_encoder.tokenize(SENTENCES)
    for task in ("intent", "sentiment"):
        torch.testing.assert_close(loaded(**batch).logits[task], model(**batch).logits[task], atol=1e-6, rtol=0)


def test_checkpoint_stores_only_heads_and_task_layers(tiny_encoder, tmp_path):
    checkpoint.save(make_model(tiny_encoder, task_layers=1), tmp_path)
    keys = checkpoint.read_weights(tmp_path).keys()
    assert keys and all(k.startswith(("heads.", "task_layers.")) for k in keys)


@pytest.fixture()
def saved(tiny_encoder, tmp_path):
    checkpoint.save(make_model(tiny_encoder), tmp_path)
    return tmp_path


def test_missing_folder(tiny_encoder, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "nope", tiny_encoder)


def test_missing_weights_file(saved, tiny_encoder):
    (saved / "weights.safetensors").unlink()
    with pytest.raises(CheckpointError, match="weights.safetensors is missing"):
        checkpoint.load(saved, tiny_encoder)


def test_corrupt_weights_file(saved, tiny_encoder):
    (saved / "weights.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        checkpoint.load(saved, tiny_encoder)


def test_partial_weights_are_refused(saved, tiny_encoder):
    weights = checkpoint.read_weights(saved)
    weights.pop("heads.sentiment.net.2.weight")
    save_file(weights, str(saved / "weights.safetensors"))
    with pytest.raises(CheckpointError, match="missing.*heads.sentiment.net.2.weight"):
        checkpoint.load(saved, tiny_encoder)


def test_config_that_does_not_match_weights(saved, tiny_encoder):
    config = json.loads((saved / "config.json").read_text())
    config["heads"][0]["labels"].append("extra_label")  # 6 labels now, weights have 5 rows
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="wrong shape"):
        checkpoint.load(saved, tiny_encoder)


def test_backbone_mismatch(saved, tiny_encoder):
    config = json.loads((saved / "config.json").read_text())
    config["hidden_size"] = 384
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="hidden size / layers"):
        checkpoint.load(saved, tiny_encoder)


@pytest.mark.parametrize("text, match", [("{not json", "not a valid checkpoint config"),
                                         ('{"heads": [], "format_version": 99}', "format version 99")])
def test_bad_config(saved, tiny_encoder, text, match):
    (saved / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match=match):
        checkpoint.load(saved, tiny_encoder)
