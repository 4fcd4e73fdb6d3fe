"""Tables and figures of docs/experiments.md from experiments/results/*.json.

    python -m experiments.report

Rewrites every block between `<!-- table:NAME -->` and `<!-- /table -->` in docs/experiments.md with the
table of that sweep, and writes one plotly figure per question to docs/figures/*.png (needs kaleido,
which drives the system's Chromium).
"""
from __future__ import annotations

import json
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from benchmarks.output import replace_generated

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
DOC = ROOT / "docs" / "experiments.md"
FIGURES = ROOT / "docs" / "figures"
METRICS = [("intent.accuracy", "intent accuracy"), ("sentiment.macro_recall", "sentiment macro-recall")]
DRIFT_HEADERS = ["embedding cosine to original", "similarity-ranking Spearman"]


def load(name: str) -> dict:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def reported_tasks(run: dict) -> set[str]:
    """Tasks this run trained, plus all heads when it started from a trained checkpoint; an untrained
    head's (random) score is left out."""
    config = json.loads((ROOT / run["config"]).read_text())
    return set(run["seeds"][0]["test"]) if config.get("init_checkpoint") else set(run["seeds"][0]["train_rows"])


def mean_std(summary: dict, key: str, scale: float = 100.0) -> str:
    if key not in summary:
        return "–"
    m = summary[key]
    spread = f" ± {m['std'] * scale:.2f}" if m["n"] > 1 else ""
    return f"{m['mean'] * scale:.2f}{spread}"


def time_cell(seeds: list[dict]) -> str:
    """Mean wall time of a run and, in brackets, the part spent computing the frozen layers' features."""
    total = sum(s["wall_seconds"]["total"] for s in seeds) / len(seeds)
    features = sum(s["wall_seconds"]["features"] for s in seeds) / len(seeds)
    return f"{total:.0f} ({features:.0f})"


def drift_cells(run: dict) -> list[str]:
    drifts = [s["embedding_drift"] for s in run["seeds"] if s["embedding_drift"]]
    if not drifts:
        return ["1 (same vectors)", "1"]
    cosine = sum(d["mean_cosine_to_original"] for d in drifts) / len(drifts)
    spearman = sum(d["pairwise_similarity_spearman"] for d in drifts) / len(drifts)
    return [f"{cosine:.3f}", f"{spearman:.3f}"]


def markdown_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)] + ["| " + " | ".join(r) + " |" for r in rows]


def sweep_table(name: str, drift: bool = False) -> str:
    results = load(name)
    headers = ["run", "seeds", "intent acc. % (test)", "sentiment macro-recall % (test)", "trainable params",
               "wall s: total (frozen features)"] + (DRIFT_HEADERS if drift else []) + ["config"]
    rows = []
    for run in results.values():
        summary, first = run["summary"], run["seeds"][0]
        tasks = reported_tasks(run)
        summary = {k: v for k, v in summary.items() if k.split(".")[0] in tasks or "." not in k}
        cells = [run["label"], str(len(run["seeds"])), *(mean_std(summary, key) for key, _ in METRICS),
                 f"{first['trainable_parameters']:,}", time_cell(run["seeds"])]
        cells += drift_cells(run) if drift else []
        cells.append(f"`{run['config']}`")
        rows.append(cells)
    return "\n".join(markdown_table(headers, rows))


def serving_table() -> str:
    report = load("q2_serving")
    if not report:
        return "_not measured yet_"
    rounds = len(next(iter(report["setups"].values()))["seconds"])
    rows = [[name, str(s["layers_per_sentence"]), f"{s['median_s']:.2f}", f"{s['ratio_to_multitask']:.2f}x"]
            for name, s in report["setups"].items()]
    return "\n".join([f"Both tasks for {report['sentences']:,} sentences, median of {rounds} interleaved rounds "
                      f"(`{report['command']}`):", ""] +
                     markdown_table(["setup", "transformer layers per sentence", "median time s", "vs multi-task"], rows))


def pretraining_table() -> str:
    report = load("pretraining")
    if not report:
        return "_not measured yet_"
    labels = {"tfidf_logistic": "TF-IDF word 1-2-grams + logistic regression (no pre-training)",
              "random_weights_probe": "same architecture, random weights, frozen + linear probe",
              "frozen_knn": "pre-trained, entirely frozen (the shown embedding) + k-NN",
              "frozen_probe": "pre-trained, entirely frozen (the shown embedding) + linear probe",
              "fine_tuned_shipped": "pre-trained + fine-tuned copy of the top layers (the shipped model)"}
    intent, sentiment = report["tasks"]["intent"], report["tasks"]["sentiment"]
    rows = []
    for key, label in labels.items():
        cells = [f"{r['dev'] * 100:.2f} / {r['test'] * 100:.2f}" if "dev" in r else f"– / {r['test'] * 100:.2f}"
                 for r in (intent[key], sentiment[key])]
        chosen = " / ".join(str(r["chosen"]) for r in (intent[key], sentiment[key]) if "chosen" in r) or "–"
        rows.append([label, *cells, chosen])
    return "\n".join(markdown_table(["method", "intent acc. % dev / test", "sentiment macro-recall % dev / test",
                                      "chosen on dev (C or k)"], rows))


def encoder_sizes_table() -> str:
    report = load("encoder_sizes")
    if not report:
        return "_not measured yet_"
    rows = [[name, f"{m['layers']} x {m['hidden']}", f"{m['parameters'] / 1e6:.1f}M",
             f"{m['mteb_average_56']:.2f} [{m['sources'][0]}]", f"{m['mteb_banking77']:.2f} [{m['sources'][1]}]",
             f"{m['mteb_tweet_sentiment']:.2f} [{m['sources'][1]}]", f"{m['cpu_ms_per_sentence']:.1f}",
             f"{m['cpu_cost_vs_minilm_l6']:.1f}x"] for name, m in report["models"].items()]
    lines = markdown_table(["encoder", "layers x hidden", "parameters", "MTEB average (56)", "MTEB Banking77",
                            "MTEB tweet sentiment", "CPU ms / sentence here", "CPU cost vs MiniLM-L6"], rows)
    lines += ["", "Sources: " + "; ".join(f"[{k}] {v}" for k, v in report["sources"].items()) + ".",
              f"CPU cost: `{report['command']}`, {report['sentences']} sentences, {report['torch_threads']} threads."]
    return "\n".join(lines)


def curve_points(results: dict, prefix: str) -> list[tuple[int, dict]]:
    return sorted((int(name.split("_n")[1]), run["dev_summary"]["sentiment.macro_recall"])
                  for name, run in results.items() if name.startswith(prefix))


def learning_curve_table() -> str:
    results = load("q5_learning_curve")
    if not results:
        return "_not measured yet_"
    mtl, single = dict(curve_points(results, "mtl_")), dict(curve_points(results, "single_"))

    def cell(m: dict) -> str:
        return f"{m['mean'] * 100:.2f} ± {m['std'] * 100:.2f} ({m['n']} seeds)"

    rows = [[f"{n:,}", cell(mtl[n]), cell(single[n]), f"{(mtl[n]['mean'] - single[n]['mean']) * 100:+.2f}"]
            for n in sorted(mtl) if n in single]
    return "\n".join(markdown_table(["sentiment training tweets", "multi-task (dev macro-recall %)",
                                      "sentiment only (dev)", "difference"], rows))


def weight_average_cell(seed: dict) -> str:
    average = seed.get("weight_average")
    if not average:
        return "–"
    return f"{average['dev_score']:.4f}, " + ("kept" if average["kept"] else f"not kept (epoch {seed['best_epoch']} was better)")


def accuracy_table() -> str:
    results = load("q4_accuracy")
    before = ROOT / "experiments" / "runs" / "top2_uniform"  # the model shipped before these levers
    shipped = json.loads((before / "metrics.json").read_text())
    shipped_test = json.loads((before / "test_metrics.json").read_text())["tasks"]
    rows = [("shipped before: 2-layer copy, uniform sampling (`experiments/runs/top2_uniform`)", 8,
             shipped["history"][shipped["best_epoch"] - 1]["dev"], shipped_test, shipped["wall_seconds"]["total"], "–")]
    for run in results.values():
        seed = run["seeds"][0]
        layers = 6 + json.loads((ROOT / run["config"]).read_text()).get("task_layers", 2)
        kept = weight_average_cell(seed)
        rows.append((f"{run['label']} (`{run['config']}`)", layers, seed["dev"], seed["test"],
                     seed["wall_seconds"]["total"], kept))
    cells = []
    for label, layers, dev, test, seconds, kept in rows:
        score = (dev["intent"]["accuracy"] + dev["sentiment"]["macro_recall"]) / 2
        tested = ([f"{test['intent']['accuracy'] * 100:.2f}", f"{test['sentiment']['macro_recall'] * 100:.2f}"] if test
                  else ["not evaluated (not a finalist)", "–"])
        cells.append([label, str(layers), f"{dev['intent']['accuracy'] * 100:.1f}",
                      f"{dev['sentiment']['macro_recall'] * 100:.2f}", f"{score:.4f}", kept, *tested,
                      f"{seconds / 60:.0f} min"])
    return "\n".join(markdown_table(["run", "layers per sentence", "intent acc. % dev", "sentiment macro-recall % dev",
                                      "dev score", "weight average's dev score", "intent acc. % test",
                                      "sentiment macro-recall % test", "training wall time"], cells))


def learning_curve_figure() -> go.Figure | None:
    results = load("q5_learning_curve")
    if not results:
        return None
    fig = go.Figure()
    for prefix, name, colour in (("mtl_", "multi-task (+ 9,003 intent sentences)", "#4c78a8"),
                                 ("single_", "sentiment only", "#e45756")):
        points = curve_points(results, prefix)
        fig.add_trace(go.Scatter(x=[n for n, _ in points], y=[m["mean"] * 100 for _, m in points], name=name,
                                 mode="lines+markers", line={"color": colour},
                                 error_y={"type": "data", "array": [m["std"] * 100 for _, m in points]}))
    fig.update_layout(title="Task B learning curve: one shared trainable layer, equal sentiment steps",
                      xaxis={"type": "log", "title": "sentiment training tweets"}, template="plotly_white",
                      yaxis={"title": "sentiment macro-recall % on dev (mean ± std, 3 seeds)"}, width=900, height=480,
                      legend={"orientation": "h", "y": -0.2})
    return fig


def bars(fig: go.Figure, runs: list[dict], key: str, col: int, name: str, color: str | None = None,
         showlegend: bool = False) -> None:
    present = [r for r in runs if key in r["summary"]]
    fig.add_trace(go.Bar(x=[r["label"] for r in present], y=[r["summary"][key]["mean"] * 100 for r in present],
                         error_y={"type": "data", "array": [r["summary"][key]["std"] * 100 for r in present]},
                         name=name, marker_color=color, showlegend=showlegend,
                         text=[f"{r['summary'][key]['mean'] * 100:.1f}" for r in present], textposition="inside",
                         insidetextanchor="end", textangle=0, textfont={"color": "white", "size": 10}),
                  row=1, col=col)


def two_metric_figure(title: str, groups: dict[str, list[dict]], colours: list[str]) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=[label for _, label in METRICS])
    for (group, runs), colour in zip(groups.items(), colours):
        for col, (key, _) in enumerate(METRICS, start=1):
            bars(fig, runs, key, col, group, colour, showlegend=col == 1 and len(groups) > 1)
    many = sum(len(runs) for runs in groups.values()) > 6
    fig.update_layout(title=title, barmode="group", height=560 if many else 440, width=1200, template="plotly_white",
                      margin={"t": 110, "b": 40}, legend={"orientation": "h", "y": 1.16, "x": 0.0})
    fig.update_yaxes(title_text="% on the test set (mean ± std over seeds)", row=1, col=1)
    if many:
        fig.update_xaxes(tickangle=-35)
    return fig


def zoom(fig: go.Figure, runs: list[dict]) -> None:
    """Start each y axis a little below the lowest bar, so differences of a point are visible."""
    for col, (key, _) in enumerate(METRICS, start=1):
        values = [r["summary"][key]["mean"] * 100 for r in runs if key in r["summary"]]
        if values:
            fig.update_yaxes(range=[max(0, min(values) - 8), min(100, max(values) + 4)], row=1, col=col)


def figures() -> list[Path]:
    FIGURES.mkdir(parents=True, exist_ok=True)
    written = []
    q1, seq, q2, q3 = load("q1_freeze"), load("q1_sequential"), load("q2_separate"), load("q3_scarce")
    specs = []
    if q1:
        runs = list(q1.values())
        specs.append(("q1_freeze", two_metric_figure("What to freeze: same budget, more trainable layers",
                                                     {"": runs}, ["#4c78a8"]), runs))
    if seq and q2.get("intent_only"):
        start = {"label": "intent model (start)", "summary": {"intent.accuracy":
                                                               q2["intent_only"]["summary"]["intent.accuracy"]}}
        runs = [start, *seq.values()]
        specs.append(("q1_sequential", two_metric_figure("Training sentiment after intent: shared layers frozen "
                                                         "vs trainable", {"": runs}, ["#f58518"]), runs))
    if q1.get("top2") and q2.get("intent_only") and q2.get("sentiment_only"):
        separate = {"label": "separate models", "summary": {
            "intent.accuracy": q2["intent_only"]["summary"]["intent.accuracy"],
            "sentiment.macro_recall": q2["sentiment_only"]["summary"]["sentiment.macro_recall"]}}
        runs = [q1["top2"] | {"label": "one multi-task model"}, separate]
        specs.append(("q2_separate", two_metric_figure("Multi-task vs separate models (same budget per task)",
                                                       {"": runs}, ["#54a24b"]), runs))
    if q3:
        groups: dict[str, list[dict]] = {}
        for name, run in q3.items():
            size, _ = name.split("_", 1)
            groups.setdefault(f"sentiment n={size[1:]}", []).append(run | {"label": run["label"].split(" (")[0]})
        runs = [r for g in groups.values() for r in g]
        specs.append(("q3_scarce", two_metric_figure("Scarce sentiment data: sampling and weighting", groups,
                                                     ["#e45756", "#72b7b2"]), runs))
    for name, fig, runs in specs:
        zoom(fig, runs)
        path = FIGURES / f"{name}.png"
        fig.write_image(path)
        written.append(path)
    curve = learning_curve_figure()
    if curve:
        curve.write_image(FIGURES / "q5_learning_curve.png")
        written.append(FIGURES / "q5_learning_curve.png")
    return written


def sweep_cost_table() -> str:
    """Training wall time per sweep: the sum of its runs' `wall_seconds.total` over every seed."""
    rows, total = [], 0.0
    for name in ("q1_freeze", "q1_sequential", "q2_separate", "q3_scarce", "q3_shared", "q4_accuracy",
                 "q5_learning_curve"):
        seeds = [s for run in load(name).values() for s in run["seeds"]]
        minutes = sum(s["wall_seconds"]["total"] for s in seeds) / 60
        total += minutes
        rows.append([name, str(len(seeds)), f"{minutes:.0f}"])
    rows.append(["**all**", str(sum(int(r[1]) for r in rows)), f"**{total:.0f}**"])
    return "\n".join(markdown_table(["sweep", "training runs (seeds included)", "wall minutes"], rows))


def tables() -> dict[str, str]:
    return {"q1_freeze": sweep_table("q1_freeze", drift=True), "q1_sequential": sweep_table("q1_sequential"),
            "q2_separate": sweep_table("q2_separate"), "q2_serving": serving_table(),
            "q3_scarce": sweep_table("q3_scarce"), "q3_shared": sweep_table("q3_shared"),
            "q4_accuracy": accuracy_table(), "pretraining": pretraining_table(),
            "encoder_sizes": encoder_sizes_table(), "q5_learning_curve": learning_curve_table(),
            "sweep_cost": sweep_cost_table()}


def render(text: str) -> str:
    """docs/experiments.md's text with every `<!-- table:NAME -->` block rewritten from the results files
    (scripts/check_docs.py compares it with the committed text)."""
    for name, table in tables().items():
        text = replace_generated(text, name, table, kind="table")
    return text


def main() -> int:
    DOC.write_text(render(DOC.read_text()))
    for path in figures():
        print(f"wrote {path.relative_to(ROOT)}")
    print(f"updated {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
