"""The benchmark must keep running: `--quick` writes sane JSON (not fast JSON), and its FLOP formula
agrees with torch's own count."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.browser import breakdown
from benchmarks.run import flops_per_sentence
from mtl_core.model.encoder import bundled_backbone_path

from conftest import DATA_DIR, run_quick_benchmark

QUICK_TIMEOUT_S = 600  # ~1.5 min on an idle 2-core machine; generous for a busy CI runner


def test_flop_formula_matches_torchs_count(tiny_encoder):
    tokens = 9  # one sentence, no padding: every counted FLOP is useful work
    ids = torch.randint(1000, 2000, (1, tokens))
    tiny_encoder.bert.set_attn_implementation("eager")  # torch's counter skips CPU SDPA kernels, not matmuls
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        tiny_encoder.hidden_states(ids, torch.ones_like(ids))
    config = tiny_encoder.bert.config
    expected = flops_per_sentence(tokens, config.num_hidden_layers, config.hidden_size,
                                                   config.intermediate_size)
    assert counter.get_total_flops() == expected


def test_browser_breakdown_uses_the_clicks_own_event_and_adds_up():
    run = {"click_epoch_s": 100.0, "arrived_ms": 450.0, "drawn_ms": 500.0}
    spans = [{"event": "analyse_button", "start": 99.0, "end": 99.3},  # an earlier click's
             {"event": "after_button", "start": 100.02, "end": 100.05},
             {"event": "analyse_button", "start": 100.25, "end": 100.4},  # a later click's
             {"event": "analyse_button", "start": 100.01, "end": 100.21}]
    parts = breakdown(run, spans)
    assert parts == pytest.approx({"to_server_ms": 10, "server_ms": 200, "to_screen_ms": 240, "draw_ms": 50})
    assert sum(parts.values()) == pytest.approx(run["drawn_ms"])


@pytest.mark.integration
@pytest.mark.app
def test_quick_benchmark_writes_sane_results(tmp_path):
    if bundled_backbone_path() is None or not (DATA_DIR / "intent" / "test.csv").is_file():
        pytest.skip("needs the bundled all-MiniLM-L6-v2 and the data folder")
    run_quick_benchmark("benchmarks.run", tmp_path, QUICK_TIMEOUT_S)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["quick"] is True and results["peak"]["fp32_gflops"] > 0
    assert (tmp_path / "RESULTS.md").read_text().startswith("# Benchmark results")

    encoders = results["encode"]["encoders"]
    assert {"ours (fp32)", "sentence-transformers"} <= set(encoders)
    for name, e in encoders.items():
        assert e["sentences_per_s"] > 0 and e["fraction_of_fp32_peak"] > 0, name
        assert e["min_cosine_vs_reference"] >= 0.9999, name  # the same embeddings, whatever the speed

    app = results["app"]["fp32"]
    if "skipped" not in app:
        assert 0 < app["first_predict_s"] and app["peak_rss_mb"] > 0
        assert all(v["p50_ms"] > 0 for v in app["latency"]["10"].values())

    assert all(f["fit_s"] >= 0 for f in results["projection"]["fit"])
    sizes = [h["json_bytes"] for h in results["heatmap"]]
    assert sizes == sorted(sizes) and sizes[0] > 0  # payload grows with N


@pytest.mark.integration
@pytest.mark.app
def test_quick_browser_benchmark_splits_each_click(tmp_path):
    if not Path("/usr/bin/chromium").exists() or not (DATA_DIR / "intent" / "train.csv").is_file():
        pytest.skip("needs Debian's chromium and the data folder")
    out = tmp_path / "browser.json"
    run_quick_benchmark("benchmarks.browser", out, QUICK_TIMEOUT_S)
    report = json.loads(out.read_text())
    assert report["app_precision"] in ("fp32", "bf16")
    for size in report["browser"]["sizes"].values():
        parts = size["breakdown_p50_ms"]
        assert parts["server_ms"] > 0 and parts["to_server_ms"] > -50  # each click found its own event (clocks agree to ms)
        assert size["drawn_p50_ms"] >= size["arrived_p50_ms"] > 0


def few_shot_folder(root: Path) -> Path:
    """The layout of jianguoz/Few-Shot-Intent-Detection (Datasets/<set>/<split>/{seq.in,label}), filled from the
    data folder: Banking77 for BANKING77, CLINC150's non-banking domains and oos queries for CLINC150."""
    from mtl_core.data.loading import read_rows

    def write(dataset: str, split: str, rows: list[dict]) -> None:
        folder = root / "Datasets" / dataset / split
        folder.mkdir(parents=True)
        (folder / "seq.in").write_text("".join(" ".join(r["text"].split()) + "\n" for r in rows), encoding="utf-8")
        (folder / "label").write_text("".join(r["label"] + "\n" for r in rows), encoding="utf-8")

    def per_label(rows: list[dict], start: int, count: int) -> list[dict]:
        seen: dict[str, int] = {}
        kept = []
        for r in rows:
            seen[r["label"]] = seen.get(r["label"], 0) + 1
            if start < seen[r["label"]] <= start + count:
                kept.append(r)
        return kept

    sets = {"BANKING77": read_rows(DATA_DIR / "intent" / "train.csv"),
            "CLINC150": [r for r in read_rows(DATA_DIR / "oos" / "train.csv") if r["label"] != "oos"]}
    for dataset, rows in sets.items():
        for split, start, count in (("train_5", 0, 5), ("train_10", 0, 10), ("valid", 10, 5), ("test", 15, 5)):
            write(dataset, split, per_label(rows, start, count))
    for split, source in (("oos/valid", "dev"), ("oos/test", "test")):
        write("CLINC150", split, [r for r in read_rows(DATA_DIR / "oos" / f"{source}.csv") if r["label"] == "oos"])
    return root


@pytest.mark.integration
def test_quick_few_shot_benchmark_reports_every_method_and_target(tmp_path):
    if not (DATA_DIR / "oos" / "train.csv").is_file():
        pytest.skip("needs the data folder with oos/")
    from benchmarks.fewshot import main
    from mtl_core.tasks.fewshot import candidates

    out = tmp_path / "fewshot.json"
    wikitext = tmp_path / "wikitext-2"
    wikitext.mkdir()
    for name in ("valid.txt", "test.txt"):  # WikiText-2's layout: headings, tokenised sentences, <unk>
        (wikitext / name).write_text(" = A heading = \n The river , which is long , flows north @-@ east into the "
                                     "sea . It was named in 1850 by a <unk> surveyor . The town 's bridge was built "
                                     "of stone in the last century . \n")
    main(["--quick", "--source", str(few_shot_folder(tmp_path / "source")), "--data-dir", str(DATA_DIR),
          "--wikitext", str(wikitext), "--out", str(out)])
    results = json.loads(out.read_text())
    assert set(results["accuracy"]) == {"BANKING77 train_5", "BANKING77 train_10", "CLINC150 train_5",
                                        "CLINC150 train_10"}
    for found in results["accuracy"].values():
        assert set(found["methods"]) == {c.name for c in candidates()}
        assert all(0 <= m[part] <= 100 for m in found["methods"].values() for part in ("valid", "test"))
        assert found["chosen_test"] == found["methods"][found["chosen_on_valid"]]["test"]
        improved = found["improved"]
        assert [r["seed"] for r in improved["runs"]] == [0] and improved["steps"] == 4
        assert improved["test_min"] <= improved["test_median"] <= improved["test_max"] <= 100
    scope = results["scope"]
    assert 0.5 <= scope["auroc"] <= 1 and "nearest label centroid (the task's)" in scope["valid_auroc"]
    assert 0 <= scope["improved"]["auroc"] <= 1
    general = results["general_text"]
    assert general["sentences_per_set"] == {"tweets": 40, "encyclopedia": 2}
    assert set(general["tasks"]) == {"BANKING77 plain", "BANKING77 improved", "CLINC150 plain", "CLINC150 improved"}
    assert all(0 <= v <= 1 for g in general["tasks"].values() for k, v in g.items() if k != "threshold")
    timing = results["time"]
    assert timing["build_median_s"] > 0 and timing["improve_build_median_s"] > 0
    for a in timing["analyse"].values():
        assert min(a["without_s"], a["with_s"], a["with_improved_s"], a["pass_without_s"], a["pass_with_improved_s"]) > 0


def test_a_benchmark_section_replaces_its_old_version_and_survives_the_main_report(tmp_path):
    from benchmarks.output import keep_sections, write_section

    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\nold tables\n")
    write_section(results, "analyse", "## One Analyse\n\nfirst")
    write_section(results, "levers", "## Levers\n\nx")
    write_section(results, "analyse", "## One Analyse\n\nsecond")
    text = results.read_text()
    assert text.count("## One Analyse") == 1 and "second" in text and "first" not in text and "## Levers" in text
    rewritten = keep_sections(results, "# Benchmark results\n\nnew tables\n")  # what benchmarks/run.py writes
    assert rewritten.startswith("# Benchmark results\n\nnew tables") and "second" in rewritten and "## Levers" in rewritten


@pytest.mark.integration
@pytest.mark.app
def test_quick_analyse_breakdown_times_every_stage_of_a_click(tmp_path):
    if not (DATA_DIR / "intent" / "train.csv").is_file():
        pytest.skip("needs the data folder")
    out = tmp_path / "analyse.json"
    run_quick_benchmark("benchmarks.analyse", out, QUICK_TIMEOUT_S)
    stages = json.loads(out.read_text())["now"]["sizes"]["30"]
    for stage in ("tokenize", "encoder", "heads", "scope", "records", "heatmap", "map", "details", "explanation"):
        assert stages[stage] > 0, stage
    assert stages["downloads"] == 0  # the panel is closed: nothing built for it
    model_pass = sum(stages[k] for k in ("tokenize", "encoder", "heads", "scope"))
    assert stages["model pass"] == pytest.approx(model_pass, abs=0.5)  # each figure is rounded to 0.1 ms
    assert stages["event analyse_button"] > stages["model pass"] and stages["Gradio"] > 0
