"""Reproducible performance benchmark: encoder throughput against sentence-transformers and against the
machine's own fp32 limit, the app's latency, cold start and memory, and the cost of the views vs N.

    python -m benchmarks.run [--quick] [--out DIR] [--data-dir DIR] [--wait-quiet MINUTES]

Writes DIR/results.json and DIR/RESULTS.md (default DIR: benchmarks/; with --quick: runs/benchmark_quick/)
and prints the tables. --quick (tiny sizes, one repeat, under 2 minutes) checks that the benchmark still
runs; its numbers mean nothing. Timings are only meaningful on an otherwise idle machine: the script
records which heavy processes (training, evaluation, tests, other app servers) and load were present, and
`--wait-quiet M` waits up to M minutes for them to finish before starting.

Our encoder and the app are measured in fp32 (the default) and, where the CPU multiplies bfloat16 in
hardware, in bf16 (MTL_PRECISION=bf16, see SentenceEncoder.set_precision).

FLOPs per sentence of T word pieces (after truncation, with [CLS] and [SEP]), for L layers of width H
and feed-forward width I, counting a multiply-add as 2 FLOPs:

    F(T) = L * (8*T*H^2 + 4*T*H*I + 4*T^2*H)
             Q,K,V,O projections | feed-forward | scores QK^T and weights x V

Embedding lookup, LayerNorm, softmax, GELU and pooling are left out (under 1% here). Work spent on
padding tokens is not counted: it is waste, so it lowers the fraction of the machine's limit.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psutil
import torch

from benchmarks.app_process import AppProcess
from benchmarks.output import keep_sections
from mtl_core.data.loading import read_texts
from mtl_core.model.encoder import SentenceEncoder, bundled_backbone_path, length_sorted_groups, native_bf16
from mtl_core.serving import projection
from mtl_core.serving import similarity as similarity_maths
from mtl_core.settings import DEFAULT_CHECKPOINT, ROOT
from mtl_core.settings import Settings as AppSettings
from mtl_core.tasks.definitions import INTENT, SENTIMENT
from ui import figures

HEAVY = re.compile(r"-m mtl_core\b|pytest|app\.py")  # training, evaluation, tests, app servers: they spoil timings
Encoder = Callable[[list[str]], np.ndarray]
REFERENCE = "sentence-transformers"
FP32, BF16 = "ours (fp32)", "ours (bf16)"
SECTIONS = ("encode", "small", "scope", "app", "projection", "heatmap")


# ---- settings ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    """Sizes and repeats of one benchmark run."""

    sentences: int | None  # from each data file; None: all 5,080
    repeats: int
    peak_n: int
    peak_repeats: int
    small_sizes: tuple[int, ...]
    small_repeats: int
    app_repeats: dict[int, int]  # request size -> repeats
    app_precisions: tuple[str, ...]  # MTL_PRECISION of each app server measured
    projection_sizes: tuple[int, ...]
    transform_sizes: tuple[int, ...]
    reference_points: int
    heatmap_sizes: tuple[int, ...]
    cluster_max: int  # time the heatmap's cluster ordering up to this N (the app draws at most 300)
    reference_timeout_s: float


FULL = Settings(sentences=None, repeats=5, peak_n=2048, peak_repeats=10, small_sizes=(1, 10), small_repeats=30,
                app_repeats={10: 20, 100: 10, 1000: 5}, app_precisions=("fp32", "bf16"),
                projection_sizes=(10, 100, 500, 1000, 2000, 5000), transform_sizes=(10, 100, 1000, 2000),
                reference_points=77 * INTENT.reference_per_label + 3 * SENTIMENT.reference_per_label,  # the app's map
                heatmap_sizes=(10, 100, 300, 1000, 2000), cluster_max=1000, reference_timeout_s=240)
QUICK = Settings(sentences=32, repeats=1, peak_n=512, peak_repeats=2, small_sizes=(1,), small_repeats=2,
                 app_repeats={10: 2}, app_precisions=("fp32",), projection_sizes=(10, 40), transform_sizes=(10,),
                 reference_points=40, heatmap_sizes=(10, 40), cluster_max=40, reference_timeout_s=90)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: checks it runs (< 2 min)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: benchmarks/, or runs/benchmark_quick/ with --quick)")
    parser.add_argument("--data-dir", type=Path, default=AppSettings.from_env().training_data_dir,
                        help="default: $MTL_DATA_DIR, else data/ in the checkout")
    parser.add_argument("--batch-size", type=int, default=32, help="encode batch size (the app's and ST's default)")
    parser.add_argument("--skip", default="", help=f"comma-separated sections to leave out: {','.join(SECTIONS)}")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="MINUTES",
                        help="wait up to this long for training, evaluation, tests and app servers to finish")
    args = parser.parse_args(argv)
    args.out = args.out or (ROOT / "runs" / "benchmark_quick" if args.quick else ROOT / "benchmarks")
    args.skip = {s for s in args.skip.split(",") if s}
    if args.skip - set(SECTIONS):
        parser.error(f"unknown section(s) in --skip: {sorted(args.skip - set(SECTIONS))}; valid: {list(SECTIONS)}")
    return args


# ---- machine and load ----------------------------------------------------------------------------------

def cpu_model(cpuinfo: str) -> str:
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def library_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    names = ["torch", "transformers", "sentence-transformers", "gradio", "gradio_client", "umap-learn", "numba",
             "numpy", "plotly"]
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def machine_info() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return {"cpu": cpu_model(cpuinfo), "logical_cpus": os.cpu_count(),
            "physical_cores": psutil.cpu_count(logical=False),
            "torch_threads": torch.get_num_threads(), "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "avx512": " avx512f" in cpuinfo, "native_bf16": native_bf16(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "os": platform.platform(), "versions": library_versions()}


def related_pids() -> set[int]:
    """This process, its ancestors (e.g. the pytest that runs --quick) and its children (the app we start)."""
    me = psutil.Process()
    return {me.pid} | {p.pid for p in me.parents()} | {p.pid for p in me.children(recursive=True)}


def other_heavy_processes() -> list[str]:
    mine = related_pids()
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["pid"] not in mine and HEAVY.search(cmdline):
            found.append(f"{proc.info['pid']}: {cmdline[:120]}")
    return found


def load_check(section: str) -> dict:
    return {"section": section, "loadavg_1m": round(os.getloadavg()[0], 2), "others": other_heavy_processes()}


def wait_for_quiet(minutes: float) -> None:
    deadline = time.monotonic() + minutes * 60
    while (others := other_heavy_processes()) and time.monotonic() < deadline:
        print(f"waiting for a quiet machine: {len(others)} heavy process(es), e.g. {others[0]}", flush=True)
        time.sleep(60)


def timed(fn: Callable, *args, **kwargs) -> tuple[float, object]:
    """(seconds, result) of one call."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


# ---- the machine's limit ---------------------------------------------------------------------------------

def matmul_peak_gflops(n: int, repeats: int, dtype: torch.dtype = torch.float32) -> float:
    """Best of `repeats` dense (n x n) @ (n x n) products with torch's threads: 2 n^3 FLOPs each."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)  # first call allocates and picks a kernel
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def flops_per_sentence(tokens: int, layers: int, hidden: int, intermediate: int) -> int:
    """See the module docstring: projections + feed-forward + attention, 2 FLOPs per multiply-add."""
    return layers * (8 * tokens * hidden**2 + 4 * tokens * hidden * intermediate + 4 * tokens**2 * hidden)


# ---- data ----------------------------------------------------------------------------------------------

def one_line_texts(path: Path) -> list[str]:
    return [" ".join(text.split()) for text in read_texts(path)]  # one line each, for the app


def load_sentences(data_dir: Path, limit: int | None) -> list[str]:
    """Banking77 test + SemEval sentiment dev (5,080; with `limit`, that many from each), in a fixed random
    order, so that every slice (a request, the first N for a figure) mixes short and long sentences alike."""
    intent, sentiment = one_line_texts(data_dir / "intent" / "test.csv"), one_line_texts(data_dir / "sentiment" / "dev.csv")
    texts = intent[:limit] + sentiment[:limit]
    random.Random(0).shuffle(texts)
    return texts


# ---- encode throughput ---------------------------------------------------------------------------------

def load_encoders(batch_size: int) -> tuple[dict[str, Encoder], SentenceEncoder]:
    """Ours in fp32 (and bf16 where the CPU has it) and the sentence-transformers reference, on the CPU."""
    from sentence_transformers import SentenceTransformer

    ours = SentenceEncoder.load(precision="fp32")
    encoders: dict[str, Encoder] = {FP32: lambda t: ours.encode(t, batch_size)}
    if native_bf16():
        fast = SentenceEncoder.load(precision="bf16")
        encoders[BF16] = lambda t: fast.encode(t, batch_size)
    reference = SentenceTransformer(bundled_backbone_path(), device="cpu")
    encoders[REFERENCE] = lambda t: reference.encode(t, batch_size=batch_size, normalize_embeddings=True,
                                                     convert_to_numpy=True, show_progress_bar=False)
    return encoders, ours


def time_alternating(encoders: dict[str, Encoder], texts: list[str], repeats: int
                     ) -> tuple[dict[str, list[float]], dict[str, np.ndarray]]:
    """Seconds per full pass of each encoder, interleaved A/B/C, B/C/A, ... so drifts hit all alike."""
    names = list(encoders)
    for name in names:
        encoders[name](texts[:64])  # warm-up: first-call allocations and kernel choices
    seconds: dict[str, list[float]] = {name: [] for name in names}
    outputs: dict[str, np.ndarray] = {}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            outputs[name] = encoders[name](texts)
            seconds[name].append(time.perf_counter() - start)
    return seconds, outputs


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Rows are unit length, so the row-wise dot product is the cosine."""
    return float((a * b).sum(axis=1).min())


def padding_overhead(tokens: list[int], batch_size: int) -> float:
    """Padding positions computed per real token with our length-sorted batches (0: no waste)."""
    padded = sum(len(idx) * max(tokens[i] for i in idx) for idx in length_sorted_groups(tokens, batch_size))
    return padded / sum(tokens) - 1


def encode_section(encoders: dict[str, Encoder], ours: SentenceEncoder, texts: list[str], repeats: int,
                   batch_size: int) -> tuple[dict, np.ndarray]:
    config = ours.bert.config
    tokens = [len(ids) for ids in ours.tokenize_ids(texts).ids]
    total_flops = sum(flops_per_sentence(t, config.num_hidden_layers, config.hidden_size, config.intermediate_size)
                      for t in tokens)
    seconds, outputs = time_alternating(encoders, texts, repeats)
    ref_speed = len(texts) / statistics.median(seconds[REFERENCE])
    encoders_out = {}
    for name, secs in seconds.items():
        median = statistics.median(secs)
        encoders_out[name] = {"seconds": [round(s, 3) for s in secs], "median_s": round(median, 3),
                              "sentences_per_s": round(len(texts) / median, 1),
                              "ratio_vs_reference": round(len(texts) / median / ref_speed, 3),
                              "achieved_gflops": round(total_flops / median / 1e9, 1),
                              "min_cosine_vs_reference": round(min_cosine(outputs[name], outputs[REFERENCE]), 6)}
    result = {"sentences": len(texts), "repeats": repeats, "batch_size": batch_size, "tokens_total": sum(tokens),
              "tokens_mean": round(sum(tokens) / len(tokens), 2), "tokens_max": max(tokens),
              "gflop_per_sentence_mean": round(total_flops / len(texts) / 1e9, 4),
              "padding_overhead": round(padding_overhead(tokens, batch_size), 4),
              "encoders": encoders_out}
    if BF16 in outputs:
        result["min_cosine_bf16_vs_fp32"] = round(min_cosine(outputs[BF16], outputs[FP32]), 6)
    return result, outputs[FP32]


def add_fractions(encode: dict, peak: dict) -> None:
    """Each encoder's GFLOP/s as a fraction of the machine's limit, the best matmul rate measured (before or
    after the encoders ran: the rate drifts by a few percent), in fp32 and in the encoder's own precision."""
    fp32 = max(peak["fp32_gflops"], peak["fp32_gflops_end"])
    for name, e in encode["encoders"].items():
        own = peak["bf16_gflops"] if name == BF16 else fp32
        e["fraction_of_fp32_peak"] = round(e["achieved_gflops"] / fp32, 3)
        e["fraction_of_own_precision_peak"] = round(e["achieved_gflops"] / own, 3)


def small_requests_section(encoders: dict[str, Encoder], texts: list[str], sizes: tuple[int, ...],
                           repeats: int) -> dict:
    """Median ms to embed a request of 1 or 10 sentences, the sizes a person types into the app."""
    result: dict[str, dict[str, float]] = {}
    for size in sizes:
        batches = [texts[(i * size) % len(texts):][:size] for i in range(repeats)]  # different sentences each time
        times: dict[str, list[float]] = {name: [] for name in encoders}
        for batch in batches:
            for name, encode in encoders.items():
                start = time.perf_counter()
                encode(batch)
                times[name].append(time.perf_counter() - start)
        medians = {name: statistics.median(t) * 1000 for name, t in times.items()}
        result[str(size)] = {name: {"median_ms": round(ms, 2), "ratio_vs_reference": round(medians[REFERENCE] / ms, 3)}
                             for name, ms in medians.items()}
    return result


# ---- the app: cold start, latency, memory --------------------------------------------------------------

def peak_rss_mb(pid: int) -> float | None:
    """The kernel's high-water mark of the process's resident memory (Linux: VmHWM)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def cold_start(server: AppProcess, reference_timeout_s: float) -> tuple[object, dict]:
    """Process start -> first answered /predict, then poll /projection until the reference map is used.

    Every poll is a real request: the slowest one shows whether any request waited on UMAP compilation.
    """
    from gradio_client import Client

    server.wait_serving()
    client = Client(server.url, verbose=False, download_files=False)
    first_s, _ = timed(client.predict, "My card has not arrived yet.", api_name="/predict")
    result = {"first_predict_s": round(time.perf_counter() - server.started, 2),
              "first_predict_latency_ms": round(first_s * 1000, 1)}
    deadline, latencies, ready = time.monotonic() + reference_timeout_s, [], False
    while time.monotonic() < deadline and not ready:
        seconds, out = timed(client.predict, "Where is my card?\nI love it", api_name="/projection")
        latencies.append(seconds)
        ready = "reference map" in out["method"]
        time.sleep(0 if ready else 1)
    result.update(reference_map_ready_s=round(time.perf_counter() - server.started, 2) if ready else None,
                  startup_projection_calls=len(latencies),
                  startup_projection_max_ms=round(max(latencies) * 1000, 1))
    return client, result


def percentiles_ms(seconds: list[float]) -> dict:
    p50, p95 = np.percentile(seconds, [50, 95])
    return {"p50_ms": round(p50 * 1000, 1), "p95_ms": round(p95 * 1000, 1), "n": len(seconds)}


def fresh_sentences(texts: list[str], start: int, size: int) -> list[str]:
    """`size` sentences from position `start` of an endless pass over `texts`; from the second pass on each
    gets a " (pass k)" suffix, so no request is answered from the app's per-sentence cache by accident."""
    return [texts[i % len(texts)] + (f" (pass {i // len(texts) + 1})" if i >= len(texts) else "")
            for i in range(start, start + size)]


def latency(client, texts: list[str], size: int, repeats: int) -> dict:
    """The app's main action through the API on `size` sentences it has never seen, `repeats` times:
    /analyse (predictions + heatmap matrix + 2-D reference-map projection from one model pass, what the
    Analyse button computes), and the three-call path a client could take instead: /predict on new
    sentences, then /similarity and /projection on the same ones (served from the per-sentence cache)."""
    calls = {"predict": (), "similarity": ("input",), "projection": (2, True)}
    seconds: dict[str, list[float]] = {name: [] for name in ["analyse", *calls, "three calls"]}
    for r in range(repeats):
        text = "\n".join(fresh_sentences(texts, 2 * r * size, size))
        seconds["analyse"].append(timed(client.predict, text, "input", 2, True, api_name="/analyse")[0])
        text = "\n".join(fresh_sentences(texts, (2 * r + 1) * size, size))
        total = 0.0
        for name, extra in calls.items():
            spent, _ = timed(client.predict, text, *extra, api_name=f"/{name}")
            seconds[name].append(spent)
            total += spent
        seconds["three calls"].append(total)
    return {name: percentiles_ms(s) for name, s in seconds.items()}


def app_section(precision: str, texts: list[str], settings: Settings, data_dir: Path) -> dict:
    if not (DEFAULT_CHECKPOINT / "config.json").is_file() and not (data_dir / "intent" / "labels.json").is_file():
        return {"skipped": f"no checkpoint in {DEFAULT_CHECKPOINT} and no data folder for untrained heads"}
    log = Path(tempfile.gettempdir()) / f"mtl_benchmark_app_{precision}.log"
    with AppProcess(log, ["--data-dir", str(data_dir)], {"MTL_PRECISION": precision}) as server:
        client, result = cold_start(server, settings.reference_timeout_s)
        result["latency"] = {str(size): latency(client, texts, size, repeats)
                             for size, repeats in settings.app_repeats.items()}
        result["peak_rss_mb"] = peak_rss_mb(server.proc.pid)
        # the data folder is this machine's (MTL_DATA_DIR), not part of the result: left out of the record
        command = " ".join(server.command[2:]).replace(f" --data-dir {data_dir}", "").replace(f"--data-dir {data_dir}", "")
        result["command"] = " ".join([f"MTL_PRECISION={precision}", "python", "app.py", command]).rstrip()
    return result


# ---- the out-of-scope decision: its cost inside the app's request path ------------------------------------

def scope_section(texts: list[str], settings: Settings) -> dict:
    """Analysis.run (one model pass + the typed predictions: what every app request does) with and without
    the shipped out-of-scope detector, alternated on the same new sentences; and the detector's memory
    (tracemalloc: resident after loading, and the peak while scoring the largest request)."""
    import tracemalloc

    from mtl_core.serving.analysis import Analysis
    from mtl_core.serving.predictor import Predictor
    from mtl_core.tasks.scope import ScopeDetector

    predictor = Predictor.load(DEFAULT_CHECKPOINT)
    detector = predictor.scopes.get("intent")
    if detector is None:
        return {"skipped": "the shipped checkpoint has no out-of-scope detector"}
    tracemalloc.start()
    loaded = ScopeDetector.load(DEFAULT_CHECKPOINT, predictor.model.config.head("intent").scope)  # kept alive while measured
    result: dict = {"loaded_mb": round(tracemalloc.get_traced_memory()[0] / 2**20, 1), "sizes": {}}
    tracemalloc.stop()
    del loaded
    for size, repeats in settings.app_repeats.items():
        seconds: dict[str, list[float]] = {"with": [], "without": []}
        for r in range(repeats):
            batch = fresh_sentences(texts, r * size, size)
            for name in ("with", "without") if r % 2 == 0 else ("without", "with"):
                predictor.scopes = {"intent": detector} if name == "with" else {}
                seconds[name].append(timed(Analysis.run, predictor, batch)[0])
        embeddings = predictor.embed(batch)
        scoring = statistics.median(timed(detector.scores, embeddings)[0] for _ in range(repeats)) * 1000
        tracemalloc.start()
        detector.scores(embeddings)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        with_ms, without_ms = (statistics.median(seconds[k]) * 1000 for k in ("with", "without"))
        result["sizes"][str(size)] = {"with_ms": round(with_ms, 1), "without_ms": round(without_ms, 1),
                                      "ratio": round(with_ms / without_ms, 3), "repeats": repeats,
                                      "scoring_ms": round(scoring, 2), "scoring_share": round(scoring / without_ms, 4),
                                      "scoring_peak_mb": round(peak / 2**20, 1)}
    return result


def scope_lines(found: dict) -> list[str]:
    if "skipped" in found:
        return ["## Out-of-scope decision", "", f"Skipped: {found['skipped']}.", ""]
    rows = [[n, r["without_ms"], r["with_ms"], r["ratio"], r["scoring_ms"], f"{r['scoring_share']:.1%}",
             r["scoring_peak_mb"], r["repeats"]] for n, r in found["sizes"].items()]
    return ["## Out-of-scope decision: cost in the request path", "",
            "`Analysis.run` (one model pass + the typed predictions) with and without the detector, alternated on "
            f"the same new sentences, median; the scoring step alone (k-NN against the references), median, and its share "
            f"of the request without it. The loaded detector holds {found['loaded_mb']} MB.", "",
            *table(["sentences", "without ms", "with ms", "ratio", "scoring ms", "scoring share", "scoring peak MB",
                    "repeats"], rows), ""]


# ---- views: projection and heatmap cost vs N -------------------------------------------------------------

def projection_section(embeddings: np.ndarray, texts: list[str], settings: Settings) -> dict:
    """UMAP fit cost vs N (after numba compilation), transform onto a reference-sized map, scatter payload."""
    warm_up_s, _ = timed(projection.warm_up)
    fits = []
    for n in [n for n in settings.projection_sizes if n <= len(embeddings)]:
        seconds, proj = timed(projection.project, embeddings[:n], 2)
        figure = figures.projection_scatter(proj.coords, texts[:n], ["x"] * n, method=proj.method)
        fits.append({"n": n, "fit_s": round(seconds, 3), "method": proj.method,
                     "scatter_json_bytes": len(figure.to_json().encode())})
    r = settings.reference_points
    ref_fit_s, model = timed(projection.CosineUMAP(r, 2).fit, embeddings[:r])
    rest = embeddings[r:]
    transforms = [{"n": n, "transform_s": round(timed(model.transform, rest[:n])[0], 3)}
                  for n in settings.transform_sizes if n <= len(rest)]
    return {"umap_warm_up_s": round(warm_up_s, 2), "fit": fits, "reference_points": r,
            "reference_fit_s": round(ref_fit_s, 2), "transform": transforms}


def heatmap_section(embeddings: np.ndarray, texts: list[str], settings: Settings) -> list[dict]:
    rows = []
    for n in [n for n in settings.heatmap_sizes if n <= len(embeddings)]:
        build_s, figure = timed(figures.similarity_heatmap, embeddings[:n], texts[:n])
        json_s, payload = timed(figure.to_json)
        row = {"n": n, "build_s": round(build_s, 3), "to_json_s": round(json_s, 3), "json_bytes": len(payload.encode()),
               "cell_text": n <= figures.CELL_TEXT_MAX}
        if n <= settings.cluster_max:
            similarity = similarity_maths.cosine_similarity(embeddings[:n])
            row["cluster_order_s"] = round(timed(similarity_maths.cluster_order, similarity)[0], 3)
        rows.append(row)
    return rows


# ---- report --------------------------------------------------------------------------------------------

def table(headers: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows), ""]


def machine_lines(results: dict) -> list[str]:
    m = results["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    others = sorted({p for check in results["load_checks"] for p in check["others"]})
    load = ", ".join(f"{c['section']} {c['loadavg_1m']}" for c in results["load_checks"])
    quick = " (QUICK mode: these numbers only show that the benchmark runs)" if results["quick"] else ""
    quiet = "yes" if results["quiet"] else f"**NO**, also running: {'; '.join(others)}"
    cpu = (f"{m['cpu']}, {m['logical_cpus']} logical CPUs ({m['physical_cores']} cores), {m['memory_gb']} GB; "
           f"torch {m['torch_threads']} threads, {m['torch_cpu_capability']} kernels "
           f"(AVX-512: {m['avx512']}, bf16 in hardware: {m['native_bf16']}); Python {m['python']}")
    return [f"Generated by `{results['command']}` on {results['started']}{quick}.", "",
            f"- Machine: {cpu}.", f"- Versions: {versions}.",
            f"- Quiet machine (no training, evaluation, tests or other app servers running): {quiet}.",
            f"- 1-minute load average when each part started: {load}.", ""]


def encode_lines(enc: dict, peak: dict) -> list[str]:
    rows = [[name, b["median_s"], b["sentences_per_s"], b["ratio_vs_reference"], b["achieved_gflops"],
             f"{b['fraction_of_fp32_peak']:.0%}", f"{b['fraction_of_own_precision_peak']:.0%}",
             f"{b['min_cosine_vs_reference']:.6f}"] for name, b in enc["encoders"].items()]
    workload = (f"Mean {enc['tokens_mean']} word pieces per sentence (max {enc['tokens_max']}), "
                f"{enc['gflop_per_sentence_mean']} GFLOP per sentence; our length-sorted batches add "
                f"{enc['padding_overhead']:.1%} padding positions.")
    bf16 = f", bf16 {peak['bf16_gflops']}" if "bf16_gflops" in peak else ""
    limit = (f"Machine limit, dense {peak['matmul_n']}x{peak['matmul_n']} matmul: fp32 {peak['fp32_gflops']} GFLOP/s "
             f"before the encoders ran and {peak['fp32_gflops_end']} after (fractions use the higher){bf16}.")
    lines = [(f"## Encode throughput: {enc['sentences']:,} sentences, batch size {enc['batch_size']}, "
              f"median of {enc['repeats']} interleaved repeats"), "", workload, limit, "",
             *table(["encoder", "median s", "sentences/s", "vs sentence-transformers", "GFLOP/s", "of fp32 peak",
                     "of own-precision peak", "min cosine vs ST"], rows)]
    if "min_cosine_bf16_vs_fp32" in enc:
        lines += [f"Min cosine between our bf16 and fp32 embeddings: {enc['min_cosine_bf16_vs_fp32']:.6f}.", ""]
    return lines


def small_lines(small: dict) -> list[str]:
    rows = [[size, name, r["median_ms"], r["ratio_vs_reference"]] for size, by_name in small.items()
            for name, r in by_name.items()]
    return ["## Small requests (embedding only, median)", "",
            *table(["sentences", "encoder", "median ms", "vs sentence-transformers"], rows)]


def server_lines(precision: str, r: dict) -> list[str]:
    if "skipped" in r:
        return [f"- {precision}: skipped ({r['skipped']})", ""]
    ready = f"{r['reference_map_ready_s']} s" if r["reference_map_ready_s"] else "not within the timeout"
    rows = [[size, name, v["p50_ms"], v["p95_ms"], v["n"]] for size, by_name in r["latency"].items()
            for name, v in by_name.items()]
    return [f"### {precision}: `{r['command']}`", "",
            (f"- Cold start (process start to first answered /predict): **{r['first_predict_s']} s**; "
             f"that request itself took {r['first_predict_latency_ms']} ms."),
            (f"- Reference map in use after {ready}; the slowest of the {r['startup_projection_calls']} "
             f"/projection requests until then took {r['startup_projection_max_ms']} ms."),
            f"- Peak RSS of the serving process (VmHWM): **{r['peak_rss_mb']} MB**.", "",
            *table(["sentences", "endpoint", "p50 ms", "p95 ms", "repeats"], rows)]


def app_lines(app: dict) -> list[str]:
    lines = ["## The app through gradio_client (127.0.0.1)", ""]
    for precision, r in app.items():
        lines += server_lines(precision, r)
    note = ("`analyse`: the main action in one call and one model pass (what the Analyse button computes). "
            "`three calls`: /predict, /similarity and /projection one after the other on the same new "
            "sentences; the last two reuse /predict's pass through the app's per-sentence cache.")
    return [*lines, note, ""]


def projection_lines(proj: dict) -> list[str]:
    fits = [[f["n"], f["fit_s"], f["method"], round(f["scatter_json_bytes"] / 1000, 1)] for f in proj["fit"]]
    return ["## Projection cost vs N", "",
            f"UMAP's numba compilation, once per process (the app does it at start-up): {proj['umap_warm_up_s']} s.",
            "",
            *table(["N", "fit s", "method", "2-D scatter JSON kB"], fits),
            (f"Reference map: fitting UMAP on {proj['reference_points']} points took {proj['reference_fit_s']} s; "
             "placing N new sentences on it (`transform`, what the app does by default):"), "",
            *table(["N", "transform s"], [[t["n"], t["transform_s"]] for t in proj["transform"]])]


def heatmap_lines(heatmap: list[dict]) -> list[str]:
    rows = [[h["n"], h["build_s"], h["to_json_s"], round(h["json_bytes"] / 1e6, 2), h["cell_text"],
             h.get("cluster_order_s", "")] for h in heatmap]
    return ["## Heatmap cost and payload vs N", "",
            *table(["N", "build s", "to_json s", "JSON MB", "cell text", "cluster order s"], rows)]


def markdown(results: dict) -> str:
    lines = ["# Benchmark results", "", *machine_lines(results), *(f"Note: {n}" for n in results["notes"])]
    if "encode" in results:
        lines += encode_lines(results["encode"], results["peak"])
    if "small_requests" in results:
        lines += small_lines(results["small_requests"])
    if "scope" in results:
        lines += scope_lines(results["scope"])
    if "app" in results:
        lines += app_lines(results["app"])
    if "projection" in results:
        lines += projection_lines(results["projection"])
    if "heatmap" in results:
        lines += heatmap_lines(results["heatmap"])
    return "\n".join(lines)


# ---- main ----------------------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> dict:
    settings = QUICK if args.quick else FULL
    if args.wait_quiet:
        wait_for_quiet(args.wait_quiet)
    results: dict = {"quick": args.quick, "started": datetime.now(UTC).isoformat(timespec="seconds"),
                     "command": " ".join(["python", "-m", "benchmarks.run", *sys.argv[1:]]),
                     "machine": machine_info(), "settings": asdict(settings), "load_checks": [], "notes": []}

    def wanted(section: str) -> bool:
        """Whether to run `section`; if so, say so (the run takes ~10 min) and note who else is using the machine."""
        if section not in args.skip:
            print(f"benchmark section: {section}", file=sys.stderr, flush=True)
            results["load_checks"].append(load_check(section))
        return section not in args.skip

    texts = load_sentences(args.data_dir, settings.sentences)
    n, reps = settings.peak_n, settings.peak_repeats
    results["peak"] = {"matmul_n": n, "fp32_gflops": round(matmul_peak_gflops(n, reps), 1)}
    has_bf16 = native_bf16()
    precisions = [p for p in settings.app_precisions if has_bf16 or p != "bf16"]
    if has_bf16:
        results["peak"]["bf16_gflops"] = round(matmul_peak_gflops(n, reps, torch.bfloat16), 1)
    else:
        results["notes"].append("this CPU has no bf16 in hardware: bf16 not measured")
    encoders, ours = load_encoders(args.batch_size)
    if wanted("encode"):
        results["encode"], embeddings = encode_section(encoders, ours, texts, settings.repeats, args.batch_size)
    else:
        embeddings = ours.encode(texts, args.batch_size)
    if wanted("small"):
        results["small_requests"] = small_requests_section(encoders, texts, settings.small_sizes,
                                                           settings.small_repeats)
    results["peak"]["fp32_gflops_end"] = round(matmul_peak_gflops(n, reps), 1)
    if "encode" in results:
        add_fractions(results["encode"], results["peak"])
    del encoders, ours  # free their memory before the views and the app run
    if wanted("scope"):
        results["scope"] = scope_section(texts, settings)
    if wanted("projection"):
        results["projection"] = projection_section(embeddings, texts, settings)
    if wanted("heatmap"):
        results["heatmap"] = heatmap_section(embeddings, texts, settings)
    if wanted("app"):
        results["app"] = {p: app_section(p, texts, settings, args.data_dir) for p in precisions}
    results["load_checks"].append(load_check("end"))
    results["quiet"] = not any(check["others"] for check in results["load_checks"])
    return results


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results = run(args)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results)
    (args.out / "RESULTS.md").write_text(keep_sections(args.out / "RESULTS.md", text))
    print(text)


if __name__ == "__main__":
    main()
