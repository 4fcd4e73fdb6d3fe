"""Bulk scoring on Ray Data (python -m mtl_core bulk) against the predict command, on this machine.

    python -m benchmarks.bulk [--rows 200000] [--big-rows 1000000] [--data-dir DIR] [--out FILE] [--quick]

Every figure comes from running the two commands as a user would (subprocesses, wall time from start to
exit, model loading and Ray's start included), both in the app's precision (MTL_PRECISION, else auto).

1. Settings: sentences/s of bulk with each (actors x torch threads, batch size) on a sample; the best is the
   command's default (mtl_core/bulk/job.py).
2. Throughput (bulk with the best settings of 1): the same ROWS distinct sentences (SemEval training tweets
   and Banking77 sentences, repeated with the repeat's number in front, so no sentence occurs twice and
   neither command's de-duplication helps) through predict and through bulk; bulk's sentences/s as a
   fraction of predict's.
3. Memory: the peak resident memory of the driver, of each scoring actor and of Ray's own processes (the
   sum of GCS, raylet and idle workers), at ROWS and at BIG_ROWS input rows. These two inputs repeat a
   pool of 200 sentences, so that 1M rows take minutes: every row is still read, written and carried
   through the pipeline, only the encoder sees each distinct sentence of a part once.
4. Start-up: Ray's start, and both commands on 100 sentences.
5. On paper: hours for 100M sentences on N machines like this one, from bulk's measured sentences/s.

Writes JSON (default benchmarks/bulk_results.json; --quick: runs/bulk_quick.json) and prints Markdown.
--quick (a few thousand rows) checks that the benchmark runs; its numbers mean nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from benchmarks.output import benchmark_parser, parse_benchmark_args, write_results
from benchmarks.run import machine_info
from mtl_core.data.loading import read_texts
from mtl_core.settings import ROOT

SETTINGS = [(2, 1, 64), (1, 2, 64), (2, 1, 32), (2, 1, 128)]  # (actors, threads per actor, batch size)
POOL = 200  # distinct sentences of the memory inputs (1M rows: 100 parts x 200 encoder passes, minutes)
PAPER_SENTENCES = 100_000_000
PAPER_MACHINES = [1, 10, 50, 100]


class PeakMemory(threading.Thread):
    """Samples a process tree every 0.2 s: the peak resident memory of the root (the driver), of each
    scoring actor (Ray names its process `ray::MapWorker(...)`) and of the sum of the rest (Ray's own)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.root, self.stop = psutil.Process(pid), threading.Event()
        self.driver, self.actors, self.ray = 0, {}, 0

    def run(self) -> None:
        while not self.stop.wait(0.2):
            try:
                self.sample()
            except psutil.Error:
                continue

    def sample(self) -> None:
        self.driver = max(self.driver, self.root.memory_info().rss)
        rest = 0
        for child in self.root.children(recursive=True):
            try:
                title, rss = " ".join(child.cmdline()), child.memory_info().rss
            except psutil.Error:
                continue
            if "MapWorker" in title:
                self.actors[child.pid] = max(self.actors.get(child.pid, 0), rss)
            else:
                rest += rss
        self.ray = max(self.ray, rest)

    def result(self) -> dict:
        mb = 1 / 2**20
        return {"driver_mb": round(self.driver * mb), "actors_mb": sorted(round(v * mb) for v in self.actors.values()),
                "ray_processes_mb": round(self.ray * mb)}


def run_command(args: list[str], env: dict) -> dict:
    """Run `python -m ...args` to the end: its wall time and peak memory; fails loudly if the command does."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    memory = PeakMemory(process.pid)
    memory.start()
    _, stderr = process.communicate()
    memory.stop.set()
    memory.join()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{stderr[-3000:]}")
    return {"seconds": time.perf_counter() - started, **memory.result()}


def predict(path: Path, work: Path, env: dict) -> dict:
    found = run_command(["mtl_core", "predict", "--input", str(path), "--output", str(work / "predict.csv")], env)
    return found | {"sentences_per_s": line_count(path) / found["seconds"]}


def bulk(path: Path, work: Path, env: dict, *flags: str) -> dict:
    output = work / "bulk"
    shutil.rmtree(output, ignore_errors=True)
    found = run_command(["mtl_core", "bulk", "--input", str(path), "--output", str(output), *flags], env)
    summary = json.loads((output / "_summary.json").read_text())
    return found | {"sentences_per_s": summary["rows_read"] / found["seconds"], "rows_written": summary["rows_written"],
                    "ray_start_s": summary["ray_start_s"], "actors": summary["actors"]}


def line_count(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def write_lines(path: Path, sentences: list[str]) -> Path:
    path.write_text("".join(s + "\n" for s in sentences), encoding="utf-8")
    return path


def distinct_sentences(pool: list[str], rows: int) -> list[str]:
    """`rows` sentences from the pool, each repeat after the first with its number in front: none equal."""
    return [pool[i % len(pool)] if i < len(pool) else f"{i // len(pool)}. {pool[i % len(pool)]}" for i in range(rows)]


def sentence_pool(data_dir: Path) -> list[str]:
    texts = read_texts(data_dir / "sentiment" / "train.csv") + read_texts(data_dir / "intent" / "train.csv")
    return list(dict.fromkeys(" ".join(t.split()) for t in texts if t.strip()))


def run(args: argparse.Namespace) -> dict:
    work = ROOT / "runs" / "bulk_benchmark"
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MTL_PRECISION": os.environ.get("MTL_PRECISION", "auto")}
    pool = sentence_pool(args.data_dir)
    sample = write_lines(work / "sample.txt", distinct_sentences(pool, args.sample_rows))
    results: dict = {"machine": {"cpu": machine_info()["cpu"], "cores": os.cpu_count(), "python": platform.python_version()},
                     "precision": env["MTL_PRECISION"], "rows": args.rows, "big_rows": args.big_rows}

    results["settings"] = []
    for actors, threads, batch in SETTINGS:
        found = bulk(sample, work, env, "--actors", str(actors), "--threads", str(threads), "--batch-size",
                     str(batch), "--part-rows", str(args.sample_rows // 8))
        results["settings"].append({"actors": actors, "threads": threads, "batch_size": batch,
                                    "sentences_per_s": found["sentences_per_s"]})
        print(results["settings"][-1], flush=True)

    tiny = write_lines(work / "tiny.txt", pool[:100])
    results["startup"] = {"predict_100_s": predict(tiny, work, env)["seconds"],
                          "bulk_100_s": bulk(tiny, work, env)["seconds"]}
    results["startup"]["ray_start_s"] = bulk(tiny, work, env)["ray_start_s"]

    big_input = write_lines(work / "distinct.txt", distinct_sentences(pool, args.rows))
    results["predict"] = predict(big_input, work, env)
    print("predict", results["predict"], flush=True)
    best = max(results["settings"], key=lambda s: s["sentences_per_s"])
    results["bulk"] = bulk(big_input, work, env, "--actors", str(best["actors"]), "--threads", str(best["threads"]),
                           "--batch-size", str(best["batch_size"]))
    print("bulk", results["bulk"], flush=True)
    results["bulk_vs_predict"] = results["bulk"]["sentences_per_s"] / results["predict"]["sentences_per_s"]

    results["memory"] = {}
    for rows in (args.rows, args.big_rows):
        path = write_lines(work / f"pool_{rows}.txt", [pool[i % POOL] for i in range(rows)])
        found = bulk(path, work, env, "--actors", str(best["actors"]), "--threads", str(best["threads"]))
        assert found["rows_written"] == rows, found
        results["memory"][str(rows)] = found
        print("memory", rows, found, flush=True)
        path.unlink()
    small, big = (results["memory"][str(r)] for r in (args.rows, args.big_rows))
    results["memory_growth"] = {key: max(big[key]) / max(small[key]) if key == "actors_mb" else big[key] / small[key]
                                for key in ("driver_mb", "actors_mb", "ray_processes_mb")}
    per_machine = results["bulk"]["sentences_per_s"]
    results["paper"] = {str(n): PAPER_SENTENCES / (n * per_machine) / 3600 for n in PAPER_MACHINES}
    return results


def markdown(r: dict) -> str:
    lines = [f"Machine: {r['machine']['cpu']}, {r['machine']['cores']} cores; precision {r['precision']}.", "",
             "| actors x threads | batch | sentences/s |", "|---|---|---|"]
    lines += [f"| {s['actors']} x {s['threads']} | {s['batch_size']} | {s['sentences_per_s']:.0f} |" for s in r["settings"]]
    p, b = r["predict"], r["bulk"]
    lines += ["", f"| {r['rows']:,} distinct sentences | wall s | sentences/s | peak memory |", "|---|---|---|---|",
              f"| predict | {p['seconds']:.0f} | {p['sentences_per_s']:.0f} | {p['driver_mb']} MB |",
              f"| bulk ({b['actors']} actors) | {b['seconds']:.0f} | {b['sentences_per_s']:.0f} | driver {b['driver_mb']} MB, "
              f"actors {b['actors_mb']} MB, Ray {b['ray_processes_mb']} MB |",
              "", f"bulk / predict: {r['bulk_vs_predict']:.3f} (target >= 0.90)", "",
              "| input rows | driver | each actor | Ray's processes |", "|---|---|---|---|"]
    lines += [f"| {int(rows):,} | {m['driver_mb']} MB | {m['actors_mb']} MB | {m['ray_processes_mb']} MB |"
              for rows, m in r["memory"].items()]
    g = r["memory_growth"]
    lines += ["", f"memory at {r['big_rows']:,} / at {r['rows']:,} rows: driver {g['driver_mb']:.3f}, "
              f"actors {g['actors_mb']:.3f}, Ray {g['ray_processes_mb']:.3f} (target <= 1.10)", "",
              f"start-up: Ray {r['startup']['ray_start_s']:.1f} s; 100 sentences: predict {r['startup']['predict_100_s']:.1f} s, "
              f"bulk {r['startup']['bulk_100_s']:.1f} s", "",
              "| machines like this | hours for 100M sentences |", "|---|---|"]
    lines += [f"| {n} | {h:.1f} |" for n, h in r["paper"].items()]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("bulk", __doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--big-rows", type=int, default=1_000_000)
    parser.add_argument("--sample-rows", type=int, default=8_000, help="rows of each settings run")
    args = parse_benchmark_args(parser, argv)
    if args.quick:
        args.rows, args.big_rows, args.sample_rows = 1_000, 2_000, 400
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results = run(args)
    write_results(args.out, results, markdown(results))


if __name__ == "__main__":
    main()
