"""Browser speed: click on Analyse -> every view drawn, in headless Debian chromium (Playwright), next to
the same request through gradio_client's /analyse in the same run.

    python -m benchmarks.browser [--sizes 10,300,1000] [--repeats 5] [--quick] [--out FILE]

Starts `python app.py` (with the data folder's reference map when there is one), waits until the map is
on the reference map, then for each size: `repeats` requests of sentences the app has never seen,
each timed from the click to (a) the status line saying "Analysed N" (the outputs have arrived) and
(b) both plots drawn with the new figures; then the same number of /analyse calls through gradio_client.
Also the first Analyse on a fresh page, the figure JSON per view, and the server-side cost of each UI
output (built in this process on the same sentences). Writes benchmarks/browser_results.json.
`MTL_PRECISION=fp32 python -m benchmarks.browser --out benchmarks/browser_results_fp32.json`: the same on a
CPU without bf16 in hardware (the app's default there).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.app_process import AppProcess
from benchmarks.run import fresh_sentences, load_sentences
from mtl_core.settings import ROOT, Settings

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 120_000
DRAWN = """([n]) => {
  const title = id => document.querySelector(`#${id} .js-plotly-plot .gtitle`)?.textContent || '';
  return title('map').startsWith(`${n} sentences`) && title('heatmap').startsWith('Cosine similarity of')
         ? performance.now() : false; }"""
ARRIVED = """([want]) => document.querySelector('#status')?.innerText.includes(want) ? performance.now() : false"""


def click_to_drawn(page, sentences: list[str]) -> dict[str, float]:
    """ms from the click to the outputs' arrival and to both plots drawn."""
    page.locator("#clear").click()
    page.wait_for_function("() => !document.querySelector('#map .js-plotly-plot')")
    page.locator("#sentences textarea").fill("\n".join(sentences))
    start = page.evaluate("() => { document.querySelector('#analyse').click(); return performance.now(); }")
    n = len(sentences)
    arrived = page.wait_for_function(ARRIVED, arg=[f"Analysed {n:,} sentence"], timeout=TIMEOUT_MS).json_value()
    drawn = page.wait_for_function(DRAWN, arg=[n], timeout=TIMEOUT_MS).json_value()
    origin_s = page.evaluate("() => performance.timeOrigin") / 1000  # epoch of performance.now() == 0
    return {"arrived_ms": arrived - start, "drawn_ms": drawn - start, "click_epoch_s": origin_s + start / 1000}


def breakdown(run: dict, spans: list[dict]) -> dict[str, float]:
    """Split one click's time with the server's span of its Analyse event (benchmarks/timed_app.py): queue
    and request (click -> event starts), server (the handler and Gradio's pre/postprocessing), to screen
    (event ends -> outputs applied: transfer, JSON parsing, the page updating its components) and draw
    (plotly drawing both figures)."""
    click = run["click_epoch_s"]
    span = min((s for s in spans if s["event"] == "analyse_button" and s["start"] >= click - 0.05),
               key=lambda s: s["start"])
    return {"to_server_ms": (span["start"] - click) * 1000, "server_ms": (span["end"] - span["start"]) * 1000,
            "to_screen_ms": run["arrived_ms"] - (span["end"] - click) * 1000,
            "draw_ms": run["drawn_ms"] - run["arrived_ms"]}


def call_ms(client, *args, api_name: str) -> float:
    """ms of one API call through gradio_client."""
    start = time.perf_counter()
    client.predict(*args, api_name=api_name)
    return (time.perf_counter() - start) * 1000


def server_side_costs(sentences: list[str]) -> dict[str, float]:
    """ms and bytes of each UI output, built in this process from one analysis of the sentences."""
    from mtl_core.serving.analysis import Analysis
    from mtl_core.serving.downloads import write_downloads
    from mtl_core.serving.maps import MapView
    from mtl_core.serving.predictor import Predictor
    from mtl_core.serving.projection import Projection, pca
    from ui.figures import heatmap_figure, map_figure

    predictor = Predictor.load()
    analysis = Analysis.run(predictor, sentences)
    view = MapView(Projection(pca(analysis.embeddings, 2), "PCA"), "", True)  # the figure's cost, not UMAP's
    timings, sizes = {}, {}
    for name, build in (("heatmap", lambda: heatmap_figure(analysis, "input")),
                        ("map figure", lambda: map_figure(analysis, view, "intent", 2)),
                        ("table", analysis.table), ("embedding preview", analysis.embedding_preview),
                        ("downloads", lambda: write_downloads(analysis, Path(tempfile.mkdtemp())))):
        start = time.perf_counter()
        out = build()
        timings[name] = round((time.perf_counter() - start) * 1000, 1)
        if hasattr(out, "to_json"):
            sizes[name] = len(out.to_json())
        elif name in ("table", "embedding preview"):
            sizes[name] = len(json.dumps(out))
    return {"build_ms": timings, "json_bytes": sizes}


def measure(url: str, texts: list[str], sizes: list[int], repeats: int, events: Path) -> dict:
    from gradio_client import Client
    from playwright.sync_api import sync_playwright

    client = Client(url, verbose=False, download_files=False)
    offset, results = 100_000, {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.wait_for_selector("#analyse")
        first = click_to_drawn(page, fresh_sentences(texts, offset, sizes[0]))
        offset += sizes[0]
        for size in sizes:
            runs, api = [], []
            for _ in range(repeats):
                runs.append(click_to_drawn(page, fresh_sentences(texts, offset, size)))
                api.append(call_ms(client, "\n".join(fresh_sentences(texts, offset + size, size)), api_name="/analyse"))
                offset += 2 * size
            spans = [json.loads(line) for line in events.read_text().splitlines()]
            parts = [breakdown(r, spans) for r in runs]
            results[str(size)] = {
                "breakdown_p50_ms": {k: round(statistics.median(p[k] for p in parts)) for k in parts[0]},
                "arrived_p50_ms": round(statistics.median(r["arrived_ms"] for r in runs)),
                "drawn_p50_ms": round(statistics.median(r["drawn_ms"] for r in runs)),
                "drawn_runs_ms": [round(r["drawn_ms"]) for r in runs],
                "api_analyse_p50_ms": round(statistics.median(api)), "repeats": repeats}
        browser.close()
    return {"first_on_fresh_page": {k: round(first[k]) for k in ("arrived_ms", "drawn_ms")}, "sizes": results,
            "explain": explain_latency(client, texts)}


def explain_latency(client, texts: list[str], n: int = 20, max_words: int = 30) -> dict:
    """ms of /explain for new sentences of up to max_words words: one call per head (what selecting a row
    computes for the intent and the sentiment)."""
    short = [t for t in texts if len(t.split()) <= max_words]
    per_call, per_sentence = [], []
    for text in fresh_sentences(short, 200_000, n):
        calls = [call_ms(client, text, task, api_name="/explain") for task in ("intent", "sentiment")]
        per_call += calls
        per_sentence.append(sum(calls))
    return {"per_call_p50_ms": round(statistics.median(per_call)),
            "per_sentence_p50_ms": round(statistics.median(per_sentence)),
            "per_sentence_p95_ms": round(sorted(per_sentence)[int(0.95 * (len(per_sentence) - 1))]), "sentences": n}



def wait_for_reference_map(client_url: str, timeout_s: float = 240) -> None:
    from gradio_client import Client

    client, deadline = Client(client_url, verbose=False), time.monotonic() + timeout_s
    while "reference map" not in client.predict("probe", api_name="/projection")["method"]:
        if time.monotonic() > deadline:
            raise RuntimeError("the reference map was not ready in time")
        time.sleep(3)


def served_precision(app_log: Path) -> str:
    """What the app computed in (app.py logs "serving in bf16" or "serving in fp32")."""
    found = re.search(r"serving in (\w+)", app_log.read_text())
    return found.group(1) if found else "unknown"


def markdown(report: dict) -> str:
    lines = [f"App serving in {report['app_precision']}.\n",
             "| sentences | click -> outputs arrived, p50 ms | click -> all views drawn, p50 ms | /analyse via "
             "gradio_client, p50 ms | runs (drawn, ms) |", "|---|---|---|---|---|"]
    for n, r in report["browser"]["sizes"].items():
        lines.append(f"| {n} | {r['arrived_p50_ms']} | **{r['drawn_p50_ms']}** | {r['api_analyse_p50_ms']} | "
                     f"{', '.join(map(str, r['drawn_runs_ms']))} |")
    lines += ["\nWhere a click's time goes, p50 ms (click -> the Analyse event starts on the server / the event "
              "on the server / its end -> outputs on the page / plotly drawing):\n",
              "| sentences | to server | server | to screen | draw |", "|---|---|---|---|---|"]
    for n, r in report["browser"]["sizes"].items():
        b = r["breakdown_p50_ms"]
        lines.append(f"| {n} | {b['to_server_ms']} | {b['server_ms']} | {b['to_screen_ms']} | {b['draw_ms']} |")
    first, why = report["browser"]["first_on_fresh_page"], report["browser"]["explain"]
    lines.append(f"\nWhy this label? (/explain through gradio_client, {why['sentences']} new sentences of up to 30 "
                 f"words): {why['per_call_p50_ms']} ms p50 per head; both heads of a sentence "
                 f"{why['per_sentence_p50_ms']} ms "
                 f"p50, {why['per_sentence_p95_ms']} ms p95.")
    lines.append(f"\nFirst Analyse on a fresh page ({report['sizes'][0]} sentences): outputs {first['arrived_ms']} ms, "
                 f"drawn {first['drawn_ms']} ms.\n\nServer-side cost of each UI output at the largest size "
                 f"({report['sizes'][-1]} sentences), ms / JSON bytes:")
    costs = report["server_side"]
    lines += [f"- {name}: {ms} ms" + (f", {costs['json_bytes'][name]:,} bytes" if name in costs["json_bytes"] else "")
              for name, ms in costs["build_ms"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.browser", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,300,1000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="10 and 30 sentences, 2 repeats: checks that it runs")
    parser.add_argument("--data-dir", type=Path, default=Settings.from_env().training_data_dir)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "browser_results.json")
    args = parser.parse_args(argv)
    sizes, repeats = ([10, 30], 2) if args.quick else ([int(s) for s in args.sizes.split(",")], args.repeats)
    texts = load_sentences(args.data_dir, None)
    log = Path(tempfile.gettempdir()) / "mtl_browser_benchmark_app.log"
    events = log.with_suffix(".events.jsonl")
    events.unlink(missing_ok=True)
    with AppProcess(log, ["--data-dir", str(args.data_dir)], launcher=["-m", "benchmarks.timed_app", str(events)]) as app:
        app.wait_serving()
        wait_for_reference_map(app.url)
        precision = f"MTL_PRECISION={os.environ['MTL_PRECISION']} " if os.environ.get("MTL_PRECISION") else ""
        report = {"command": precision + " ".join(["python", "-m", "benchmarks.browser", *sys.argv[1:]]), "sizes": sizes,
                  "browser": measure(app.url, texts, sizes, repeats, events), "app_precision": served_precision(log)}
    report["server_side"] = server_side_costs(fresh_sentences(texts, 0, sizes[-1]))
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
