"""Where one Analyse spends its time: every stage of the real handlers, at 10 / 300 / 1,000 sentences.

    python -m benchmarks.analyse [--sizes 10,300,1000] [--repeats 5] [--data-dir DIR] [--out FILE] [--quick]

Builds the app as app.py does (the shipped model in the app's precision, its sentence cache, the reference
map, the Gradio Blocks) in this process and runs the Analyse button's three events through Gradio's own
Blocks.process_api, as the server does for a click: `analyse_button` (the table and both figures), then
`after_button` (the details of row 1, the embedding preview, the download files) and `explain_button` (the
word explanations of row 1). Each repeat sends sentences the app has never seen (no cache hits). The
stages are timed by wrapping the functions the handlers call (here, not in the app):

  tokenize, encoder (the backbone and the task layers), heads, scope (the out-of-scope scores), records
  (typed predictions), table, heatmap (figure), map (projection onto the reference map, and figure),
  downloads, details (neighbours, scope evidence, label panels), explanation, Gradio (process_api minus
  the handler: preprocessing, postprocessing each output into its JSON-ready model), serialisation (the
  outputs to JSON bytes, as the server sends them), and "other" (the rest of the handler).

"model pass" = tokenize + encoder + heads + scope, the denominator of the target "analyse event <= 1.3x the
model pass". --label names the run (e.g. "before" and "after" a change): runs with other labels stay in
the JSON file (default benchmarks/analyse_results.json; --quick: runs/analyse_quick.json), and the table of
every run is written into the RESULTS.md beside the JSON (by default benchmarks/RESULTS.md) as its own section
(--quick: printed only).
"""
from __future__ import annotations

import argparse
import asyncio
import functools
import json
import statistics
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import orjson

from benchmarks.output import benchmark_parser, parse_benchmark_args, write_results, write_section
from benchmarks.run import fresh_sentences, load_sentences
from mtl_core.settings import ROOT, SERVING_PRECISION, Settings

MODEL_PASS = ("tokenize", "encoder", "heads", "scope")
STAGES = (*MODEL_PASS, "records", "table", "heatmap", "map", "downloads", "details", "explanation")
EVENTS = ("analyse_button", "after_button", "explain_button")


class Stages:
    """Seconds per stage of the request being timed; wrapped functions add to them (outermost call only)."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.active: set[str] = set()

    def wrap(self, owner: object, name: str, stage: str) -> None:
        """Time `owner.name` as `stage`, unless it runs inside another stage (the model inside an
        explanation is the explanation's time); only heads inside the encoder count on their own."""
        original = getattr(owner, name)
        stages = self

        @functools.wraps(original)
        def timed(*args, **kwargs):
            if not stages.active <= {"handler", "encoder"} or stage in stages.active:
                return original(*args, **kwargs)
            stages.active.add(stage)
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                stages.seconds[stage] += time.perf_counter() - start
                stages.active.discard(stage)

        setattr(owner, name, timed)

    @contextmanager
    def span(self, stage: str):
        start = time.perf_counter()
        yield
        self.seconds[stage] += time.perf_counter() - start


def instrument(stages: Stages) -> None:
    """Time the functions the Analyse handlers call, where the handlers look them up."""
    from mtl_core.model import encoder, model
    from mtl_core.serving import analysis, service
    from mtl_core.tasks import scope
    from ui import events

    stages.wrap(encoder.SentenceEncoder, "tokenize_ids", "tokenize")
    stages.wrap(model.MultiTaskModel, "forward", "encoder")  # heads are subtracted below
    stages.wrap(model.MultiTaskModel, "heads_from_pooled", "heads")
    stages.wrap(scope.ScopeDetector, "scores", "scope")
    stages.wrap(analysis, "predictions", "records")
    stages.wrap(analysis.Analysis, "table", "table")
    stages.wrap(events, "heatmap_figure", "heatmap")
    stages.wrap(events.Events, "map_outputs", "map")
    stages.wrap(service.Service, "write_downloads", "downloads")
    stages.wrap(events.Events, "details", "details")
    stages.wrap(analysis.Analysis, "embedding_preview", "details")
    stages.wrap(events.Events, "explanation", "explanation")
    stages.wrap(events.Events, "analyse", "handler")
    stages.wrap(events.Events, "after_analyse", "handler")
    stages.wrap(events.Events, "explain_selected", "handler")


def build_app(data_dir: Path):
    """The app as app.py builds it, without a server."""
    import app
    from mtl_core.serving.predictor import Predictor, SentenceCache
    from mtl_core.serving.reference import ReferenceBuilder, load_reference_set
    from mtl_core.serving.service import Service
    from ui import build_demo

    settings = Settings.from_env(default_precision=SERVING_PRECISION)
    predictor = Predictor.load(settings.checkpoint, settings.backbone, precision=settings.precision)
    predictor.run(app.WARM_UP)
    predictor.cache = SentenceCache()
    builder = ReferenceBuilder(lambda: load_reference_set(data_dir), predictor.embed).start()
    if not builder.wait(600):
        raise SystemExit(f"the reference map was not ready: {builder.status}")
    return build_demo(Service(predictor, builder, settings)), predictor.encoder.precision


def event_fn(demo, api_name: str):
    return next(fn for fn in demo.fns.values() if fn.api_name == api_name)


def click(demo, sentences: list[str], stages: Stages) -> None:
    """One Analyse click's three events, through Gradio's process_api, with one session state."""
    from gradio.state_holder import SessionState

    state = SessionState(demo)
    sent = {"analyse_button": ["\n".join(sentences)], "after_button": [None], "explain_button": [None, 0]}  # row 1
    for name in EVENTS:
        fn = event_fn(demo, name)
        given = sent[name]
        inputs = given + [getattr(block, "value", None) for block in fn.inputs[len(given):]]  # the other controls as they are
        start = time.perf_counter()
        out = asyncio.run(demo.process_api(fn, inputs, state=state, in_event_listener=True))
        stages.seconds[f"event {name}"] += time.perf_counter() - start
        with stages.span("serialisation"):
            orjson.dumps(out["data"], option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_PASSTHROUGH_DATETIME,
                         default=str)


def breakdown(seconds: dict[str, float]) -> dict[str, float]:
    """ms per stage of one click, the encoder without its heads, Gradio's share and the rest."""
    ms = {k: v * 1000 for k, v in seconds.items()}
    ms["encoder"] -= ms.get("heads", 0.0)
    events = sum(ms[f"event {e}"] for e in EVENTS)
    ms["Gradio"] = events - ms["handler"]
    for stage in STAGES:
        ms.setdefault(stage, 0.0)  # a stage that did not run this click (the downloads of a closed panel)
    ms["other"] = ms["handler"] - sum(ms[k] for k in STAGES)
    ms["model pass"] = sum(ms[k] for k in MODEL_PASS)
    return ms


def measure(demo, stages: Stages, texts: list[str], sizes: list[int], repeats: int) -> dict:
    offset, results = 0, {}
    click(demo, fresh_sentences(texts, offset, 5), Stages())  # warm Gradio's own code paths
    for size in sizes:
        runs = []
        for _ in range(repeats):
            offset += size
            stages.seconds.clear()
            click(demo, fresh_sentences(texts, offset, size), stages)
            runs.append(breakdown(stages.seconds))
        results[str(size)] = {k: round(statistics.median(r.get(k, 0.0) for r in runs), 1) for k in runs[0]}
        print(size, results[str(size)], flush=True)
    return results


def markdown(runs: dict) -> str:
    return "## One Analyse, stage by stage\n\n" + "\n\n".join(run_markdown(label, r) for label, r in runs.items())


def run_markdown(label: str, report: dict) -> str:
    sizes = list(report["sizes"])
    rows = [*MODEL_PASS, "model pass", *STAGES[len(MODEL_PASS):], "other (rest of the handlers)", "Gradio", "serialisation"]
    lines = [f"**{label}** ({report['revision']}): one Analyse click, p50 ms of {report['repeats']} "
             f"({report['precision']}, {report['cpu']}): `{report['command']}`", "",
             "| stage | " + " | ".join(f"{n} sentences" for n in sizes) + " |", "|---|" + "---|" * len(sizes)]
    for row in rows:
        key = row.split(" (")[0]
        lines.append(f"| {row} | " + " | ".join(f"{report['sizes'][n].get(key, 0):.0f}" for n in sizes) + " |")
    for event in EVENTS:
        lines.append(f"| event {event} | " + " | ".join(f"{report['sizes'][n]['event ' + event]:.0f}" for n in sizes) + " |")
    lines.append("| **analyse event / model pass** | " + " | ".join(
        f"**{report['sizes'][n]['event analyse_button'] / report['sizes'][n]['model pass']:.2f}**" for n in sizes) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("analyse", __doc__)
    parser.add_argument("--sizes", default="10,300,1000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--label", default="now", help="the run's name in the results (e.g. before, after)")
    args = parse_benchmark_args(parser, argv)
    args.sizes = [10, 30] if args.quick else [int(s) for s in args.sizes.split(",")]
    args.repeats = 1 if args.quick else args.repeats
    return args


def main(argv: list[str] | None = None) -> None:
    import sys

    from benchmarks.run import machine_info

    args = parse_args(argv)
    stages = Stages()
    instrument(stages)
    demo, precision = build_app(args.data_dir)
    texts = load_sentences(args.data_dir, None)
    report = {"command": " ".join(["python", "-m", "benchmarks.analyse", *sys.argv[1:]]), "precision": precision,
              "cpu": machine_info()["cpu"], "revision": revision(), "repeats": args.repeats,
              "sizes": measure(demo, stages, texts, args.sizes, args.repeats)}
    runs = json.loads(args.out.read_text()) if args.out.exists() else {}
    runs[args.label] = report
    write_results(args.out, runs, markdown(runs))
    if not args.quick:
        write_section(args.out.parent / "RESULTS.md", "analyse", markdown(runs))  # beside the JSON


def revision() -> str:
    """The commit measured, marked when the working tree differs from it."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    changed = git("status", "--porcelain", "--", "mtl_core", "ui", "app.py")
    return git("rev-parse", "--short", "HEAD") + (" + uncommitted changes" if changed else "")


if __name__ == "__main__":
    main()
