"""Tables and figures of docs/experiments.md from experiments/results/*.json.

    python -m experiments.report

Rewrites every block between `<!-- table:NAME -->` and `<!-- /table -->` in docs/experiments.md with the
table of that sweep, and writes one plotly figure per question to docs/figures/*.png (needs kaleido,
which drives the system's Chromium).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

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


def sweep_table(name: str, drift: bool = False) -> str:
    results = load(name)
    headers = ["run", "seeds", "intent acc. % (test)", "sentiment macro-recall % (test)", "trainable params",
               "wall s: total (frozen features)"] + (DRIFT_HEADERS if drift else []) + ["config"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for run in results.values():
        summary, first = run["summary"], run["seeds"][0]
        tasks = reported_tasks(run)
        summary = {k: v for k, v in summary.items() if k.split(".")[0] in tasks or "." not in k}
        cells = [run["label"], str(len(run["seeds"])), *(mean_std(summary, key) for key, _ in METRICS),
                 f"{first['trainable_parameters']:,}", time_cell(run["seeds"])]
        cells += drift_cells(run) if drift else []
        cells.append(f"`{run['config']}`")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def serving_table() -> str:
    report = load("q2_serving")
    if not report:
        return "_not measured yet_"
    lines = [f"Both tasks for {report['sentences']:,} sentences (`{report['command']}`):", "",
             "| setup | parameters held | RSS of the loaded models MB | median time s |", "|---|---|---|---|"]
    for name, s in report["setups"].items():
        lines.append(f"| {name} | {s['parameters']:,} | {s['rss_model_mb']:.0f} | {s['median_s']:.2f} |")
    lines.append(f"\nTwo separate models take **{report['separate_vs_multitask_time_ratio']}x** the time of one "
                 "multi-task model.")
    return "\n".join(lines)


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
    return written


def main() -> int:
    tables = {"q1_freeze": sweep_table("q1_freeze", drift=True), "q1_sequential": sweep_table("q1_sequential"),
              "q2_separate": sweep_table("q2_separate"), "q2_serving": serving_table(),
              "q3_scarce": sweep_table("q3_scarce"), "q3_shared": sweep_table("q3_shared")}
    text = DOC.read_text()
    for name, table in tables.items():
        text = re.sub(rf"(<!-- table:{name} -->\n).*?(<!-- /table -->)", lambda m: m[1] + table + "\n" + m[2],
                      text, flags=re.S)
    DOC.write_text(text)
    for path in figures():
        print(f"wrote {path.relative_to(ROOT)}")
    print(f"updated {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
