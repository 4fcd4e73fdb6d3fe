import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mtl_core.commands.train import parser, resolve_config
from mtl_core.model.encoder import SentenceEncoder
from mtl_core.settings import ROOT, SettingsError
from mtl_core.tasks import checkpoint
from mtl_core.training.features import compute_features, logits_from_features
from mtl_core.training.loop import (
    TaskLossWeighting,
    TrainConfig,
    WeightAverage,
    class_weights,
    load_data,
    make_optimizer,
    task_probabilities,
    train,
)
from mtl_core.training.metrics import expected_calibration_error, fit_temperature, task_metrics

from conftest import two_task_model

TEXTS = ["my card has not arrived", "I love this", "a", "exchange rate for a very long list of currencies please"]


@pytest.mark.parametrize("task_layers", [0, 1, 2])
def test_cached_forward_equals_uncached(tiny_encoder, task_layers):
    model = two_task_model(tiny_encoder, ["x", "y", "z"], task_layers=task_layers).eval()
    store = compute_features(model, TEXTS, batch_size=3)
    cached = logits_from_features(model, store, [3, 0, 2], ["intent", "sentiment"])
    direct = model(**tiny_encoder.tokenize([TEXTS[i] for i in (3, 0, 2)])).logits
    for task in ("intent", "sentiment"):
        torch.testing.assert_close(cached[task], direct[task], atol=1e-5, rtol=0)


def run_training(tmp_path, data_dir, backbone_dir, **overrides):
    cfg = TrainConfig(output=str(tmp_path / "run"), data_dir=str(data_dir), backbone=str(backbone_dir),
                      epochs=4, batch_size=8, lr=1e-3, head_lr=1e-2, patience=10, cache_dir=None, **overrides)
    encoder = SentenceEncoder.load(cfg.backbone)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    return cfg, encoder, before, train(cfg, encoder)


def train_loss(model, data, task):
    store = compute_features(model, data[task].train.texts)
    logits = logits_from_features(model.eval(), store, list(range(len(store))), [task])[task]
    return torch.nn.functional.cross_entropy(logits, torch.as_tensor(data[task].train.labels)).item()


def test_training_lowers_loss_keeps_frozen_weights_and_round_trips(tmp_path, tiny_data_dir, tiny_backbone_dir):
    cfg, encoder, before, metrics = run_training(tmp_path, tiny_data_dir, tiny_backbone_dir, task_layers=1,
                                                 freeze=["sentiment"], seed=3)
    data = load_data(cfg)
    torch.manual_seed(cfg.seed)
    fresh = two_task_model(encoder, data["intent"].label_names, task_layers=1)
    trained = checkpoint.load(cfg.output, encoder)
    assert train_loss(trained, data, "intent") < train_loss(fresh, data, "intent")
    for key, value in encoder.state_dict().items():  # the shared backbone is bit-for-bit unchanged
        assert torch.equal(value, before[key]), key
    for key, value in trained.heads["sentiment"].state_dict().items():  # the frozen head too
        assert torch.equal(value, fresh.heads["sentiment"].state_dict()[key]), key
    assert trained.config.untrained_heads == ["sentiment"]  # frozen at its random start: never trained
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["best_epoch"] >= 1 and set(saved["dev"]) == {"intent", "sentiment"}
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["task_layers"] == 1


def test_frozen_backbone_training_with_uncertainty_weighting(tmp_path, tiny_data_dir, tiny_backbone_dir):
    _, _, _, metrics = run_training(tmp_path, tiny_data_dir, tiny_backbone_dir, task_layers=0,
                                    uncertainty_weighting=True, sampling="uniform", class_weighting=["sentiment"],
                                    epoch_steps=3)
    assert set(metrics["uncertainty_log_vars"]) == {"intent", "sentiment"}
    assert metrics["steps_per_epoch"] == 3
    assert metrics["task_probabilities"] == {"intent": 0.5, "sentiment": 0.5}
    assert metrics["calibration"]["intent"]["temperature"] > 0


def test_weight_averaged_run_keeps_the_better_of_average_and_best_epoch(tmp_path, tiny_data_dir, tiny_backbone_dir):
    cfg, encoder, _, metrics = run_training(tmp_path, tiny_data_dir, tiny_backbone_dir, task_layers=2,
                                            average_from=2, label_smoothing={"intent": 0.1}, layer_lr_decay=0.5)
    averaged = metrics["weight_average"]
    assert averaged["epochs"] == [2, 3, 4]
    best_single = max(h["dev_score"] for h in metrics["history"])
    assert metrics["dev_score"] == max(best_single, averaged["dev_score"])
    assert averaged["kept"] == (averaged["dev_score"] > best_single)


def test_weight_average_is_the_mean_of_the_added_states():
    average = WeightAverage()
    for epoch, value in enumerate([1.0, 2.0, 6.0], start=1):
        average.add(epoch, {"w": torch.full((2,), value), "step": torch.tensor(epoch)})
    torch.testing.assert_close(average.state["w"], torch.full((2,), 3.0))
    assert average.state["step"].item() == 3  # integer buffers keep their last value


def test_layer_lr_decay_slows_the_lower_task_layers(tiny_encoder):
    model = two_task_model(tiny_encoder, ["x", "y"], task_layers=2)
    cfg = TrainConfig(lr=1e-3, layer_lr_decay=0.5, head_lr=1e-2)
    optimizer = make_optimizer(model, TaskLossWeighting(["intent"], {}, False), cfg)
    assert [g["lr"] for g in optimizer.param_groups] == [5e-4, 1e-3, 1e-2]


def test_a_run_on_some_tasks_marks_only_those_heads_trained(tmp_path, tiny_data_dir, tiny_backbone_dir):
    import app

    cfg, *_ = run_training(tmp_path, tiny_data_dir, tiny_backbone_dir, task_layers=0, tasks=["intent"])
    config = checkpoint.read_config(cfg.output)
    assert config.head("intent").trained and not config.head("sentiment").trained and not config.trained
    settings = app.Settings(checkpoint=Path(cfg.output), backbone=str(tiny_backbone_dir))
    _, banner = app.load_predictor(settings, checkpoint_given=True)
    assert banner is not None and "sentiment" in banner and "intent" not in banner


def test_old_checkpoints_without_per_head_flags_still_load_as_trained():
    from mtl_core.model.config import ModelConfig

    old = {"heads": [{"name": "intent", "labels": ["a", "b"]}, {"name": "sentiment", "labels": ["n", "p"]}],
           "trained": True}
    assert ModelConfig.from_dict(old).trained
    assert ModelConfig.from_dict({**old, "trained": False}).untrained_heads == ["intent", "sentiment"]


def test_task_probabilities():
    sizes = {"a": 900.0, "b": 100.0}
    assert task_probabilities(sizes, "proportional", 1) == pytest.approx({"a": 0.9, "b": 0.1})
    assert task_probabilities(sizes, "temperature", 2) == pytest.approx({"a": 0.75, "b": 0.25})
    assert task_probabilities(sizes, "uniform", 1) == pytest.approx({"a": 0.5, "b": 0.5})
    with pytest.raises(ValueError, match="valid"):
        task_probabilities(sizes, "random", 1)


def test_class_weights_are_balanced():
    weights = class_weights(np.array([0, 0, 0, 1]), 2)
    assert weights.tolist() == pytest.approx([4 / 6, 2.0])


def test_loss_weighting():
    loss = torch.tensor(2.0)
    assert TaskLossWeighting(["a"], {"a": 3.0}, learned=False)("a", loss).item() == 6.0
    learned = TaskLossWeighting(["a"], {}, learned=True)
    with torch.no_grad():
        learned.log_vars["a"].fill_(np.log(2.0))
    assert learned("a", loss).item() == pytest.approx(2.0 / 2.0 + np.log(2.0))


def test_metrics_on_hand_made_predictions():
    m = task_metrics(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]))
    assert m["accuracy"] == 0.75
    assert m["macro_recall"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


def test_expected_calibration_error_by_hand():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    # bin 0.9: conf 0.9, acc 1/2 -> 0.4; bin 0.6: conf 0.6, acc 1 -> 0.4; ECE = 0.4
    assert expected_calibration_error(probs, np.array([0, 1, 0, 0])) == pytest.approx(0.4)


def test_temperature_scaling_recovers_a_known_temperature():
    torch.manual_seed(0)
    true_logits = torch.randn(4000, 4) * 2
    labels = torch.distributions.Categorical(logits=true_logits).sample()
    assert fit_temperature(true_logits * 3, labels) == pytest.approx(3.0, rel=0.1)


def test_config_file_and_flags(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"task_layers": 0, "epochs": 3, "loss_weights": {"sentiment": 2}}))
    cfg = resolve_config(parser().parse_args(["--config", str(path), "--epochs", "5", "--train-size", "sentiment=500"]))
    assert (cfg.task_layers, cfg.epochs, cfg.loss_weights, cfg.train_size) == (0, 5, {"sentiment": 2}, {"sentiment": 500})
    path.write_text(json.dumps({"epochz": 3}))
    with pytest.raises(SettingsError, match="unknown fields"):
        resolve_config(parser().parse_args(["--config", str(path)]))


def test_the_environment_wins_over_a_config_file_and_flags_over_both(tmp_path):
    from mtl_core.settings import DEFAULT_DATA_DIR, Settings

    path = tmp_path / "c.json"
    path.write_text(json.dumps({"data_dir": "from/config", "backbone": "config/backbone"}))
    args = ["--config", str(path)]
    assert resolve_config(parser().parse_args(args), Settings()).data_dir == "from/config"  # nothing set here
    env = Settings.from_env({"MTL_DATA_DIR": "from/env", "MTL_BACKBONE": "env/backbone"})
    cfg = resolve_config(parser().parse_args(args), env)
    assert (cfg.data_dir, cfg.backbone) == ("from/env", "env/backbone")
    cfg = resolve_config(parser().parse_args([*args, "--data-dir", "from/flag", "--backbone", "flag/b"]), env)
    assert (cfg.data_dir, cfg.backbone) == ("from/flag", "flag/b")
    assert resolve_config(parser().parse_args([]), Settings()).data_dir == str(DEFAULT_DATA_DIR)  # data/ in the checkout


def test_saved_configs_carry_no_data_folder(tmp_path, tiny_data_dir, tiny_backbone_dir):
    from mtl_core.training.loop import saved_config

    cfg = TrainConfig(output=str(tmp_path / "run"), data_dir=str(tiny_data_dir))
    assert "data_dir" not in saved_config(cfg)
    for path in [ROOT / "assets" / "checkpoint" / "train_config.json", *ROOT.glob("experiments/runs/*/train_config.json")]:
        assert "data_dir" not in json.loads(path.read_text()), path
    assert "data_dir" not in json.loads((ROOT / "assets" / "checkpoint" / "config.json").read_text())["extra"]["train_config"]


def test_every_config_field_is_a_flag_with_its_help():
    from dataclasses import fields

    flags = {option: a for a in parser()._actions for option in a.option_strings}
    for f in fields(TrainConfig):
        flag = flags.get("--" + f.name.replace("_", "-"))
        assert flag is not None and flag.dest == f.name and flag.help.startswith(f.metadata["help"]), f.name
    assert parser().prog == "python -m mtl_core train"
    args = parser().parse_args(["--no-calibrate", "--uncertainty-weighting", "--freeze", "task_layers,intent",
                                "--sampling", "uniform", "--no-cache"])
    cfg = resolve_config(args)
    assert (cfg.calibrate, cfg.uncertainty_weighting, cfg.freeze, cfg.sampling, cfg.cache_dir) == (
        False, True, ["task_layers", "intent"], "uniform", None)


def test_batch_sampler_covers_every_row_once_per_pass_and_buckets_by_length():
    from mtl_core.training.loop import BatchSampler

    lengths = np.random.default_rng(0).integers(5, 60, size=103)
    sampler = BatchSampler(103, 8, np.random.default_rng(1), lengths, window=4)
    batches = [sampler.next() for _ in range(13)]  # ceil(103 / 8) batches = one pass
    assert sorted(i for b in batches for i in b) == list(range(103))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < np.ptp(lengths) / 2  # similar lengths share a batch


def test_uncalibrated_inverts_temperature_scaling():
    from mtl_core.training.metrics import uncalibrated

    logits = torch.randn(20, 5) * 3
    scaled = torch.softmax(logits / 2.5, dim=1).numpy()
    np.testing.assert_allclose(uncalibrated(scaled, 2.5), torch.softmax(logits, 1).numpy(), atol=1e-5)


def test_feature_cache_key_separates_precisions(tiny_encoder):
    from mtl_core.training.features import cache_key

    model = two_task_model(tiny_encoder, ["x", "y"], task_layers=1)
    fp32_key = cache_key(model, TEXTS)
    tiny_encoder.precision = "bf16"  # bf16 features must never be served to an fp32 run, or back
    assert cache_key(model, TEXTS) != fp32_key


def test_evaluation_writes_bf16_beside_the_fp32_reference_never_over_it(tmp_path, tiny_checkpoint, tiny_data_dir):
    import shutil

    from mtl_core.training.evaluation import evaluate_checkpoint

    ckpt = shutil.copytree(tiny_checkpoint, tmp_path / "ckpt")
    report = evaluate_checkpoint(ckpt, tiny_data_dir, with_scope=False)
    assert report["precision"] == "fp32" and 0 <= report["tasks"]["intent"]["accuracy"] <= 1
    reference = (ckpt / "eval_test" / "metrics.json").read_bytes()
    other = evaluate_checkpoint(ckpt, tiny_data_dir, precision="bf16", with_scope=False)
    assert (ckpt / "eval_test" / "metrics.json").read_bytes() == reference or other["precision"] == "fp32"
    assert (ckpt / f"eval_test{'' if other['precision'] == 'fp32' else '_bf16'}" / "metrics.json").is_file()


def test_results_record_paths_inside_the_repository_relative_to_it(tmp_path):
    from mtl_core.settings import ROOT, repo_relative

    assert repo_relative(ROOT / "assets" / "checkpoint") == "assets/checkpoint"
    assert repo_relative(tmp_path) == str(tmp_path)  # outside the checkout: as given
