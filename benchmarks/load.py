"""Load test: N concurrent gradio_client clients send mixed requests to the app on 127.0.0.1.

    python -m benchmarks.load [--clients 16] [--requests 30] [--concurrency 1,2,4] [--quick] [--out FILE]

For each queue concurrency limit (MTL_CONCURRENCY) it starts `python app.py`, warms it up, then runs the
clients, each with its own connection and a seeded mix of requests: /analyse (10 sentences), /predict
(1-20), /embed (5), /similarity (10), /projection (10), on sentences drawn from the data folder (or the
project's reference sentences). Bounded: each client stops after --requests or --max-seconds. Reports
errors, p50/p95/p99 latency, requests/s and the server's RSS before, at half-way and after.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from benchmarks.app_process import AppProcess
from benchmarks.run import load_sentences
from mtl_core.data.loading import read_texts
from mtl_core.serving.reference import SHIPPED_REFERENCE
from mtl_core.settings import Settings

REQUEST_MIX = [  # (endpoint, sentences per request, extra arguments, weight)
    ("/analyse", 10, ("input", 2, True), 4),
    ("/predict", None, (), 3),  # None: 1 to 20
    ("/embed", 5, (), 1),
    ("/similarity", 10, ("input",), 1),
    ("/projection", 10, (2, True), 1),
]


def sentence_pool(data_dir: Path) -> list[str]:
    if (data_dir / "intent" / "test.csv").is_file():
        return load_sentences(data_dir, None)
    return read_texts(SHIPPED_REFERENCE)


def client_loop(url: str, pool: list[str], seed: int, requests: int, deadline: float, out: list) -> None:
    """One client: its own connection, `requests` requests or until the deadline; appends (endpoint, s, error)."""
    from gradio_client import Client

    rng = random.Random(seed)
    client = Client(url, verbose=False, download_files=False)
    endpoints, weights = list(range(len(REQUEST_MIX))), [m[3] for m in REQUEST_MIX]
    for _ in range(requests):
        if time.monotonic() > deadline:
            break
        endpoint, size, extra, _ = REQUEST_MIX[rng.choices(endpoints, weights)[0]]
        text = "\n".join(rng.sample(pool, size or rng.randint(1, 20)))
        started = time.perf_counter()
        try:
            client.predict(text, *extra, api_name=endpoint)
            error = None
        except Exception as err:  # noqa: BLE001 - every failure counts, whatever its type
            error = f"{endpoint}: {type(err).__name__}: {str(err)[:200]}"
        out.append((endpoint, time.perf_counter() - started, error))
    client.close()


def rss_mb(pid: int) -> float:
    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


def rss_at_half(pid: int, results: list, half: int, stop: threading.Event, out: dict) -> None:
    """Record the server's RSS once half of the requests are done: growth after that point is what a
    leak would show; growth before it includes the allocator and caches settling."""
    while not stop.is_set() and len(results) < half:
        time.sleep(0.2)
    out["rss_half_mb"] = rss_mb(pid)


def run_load(url: str, pid: int, pool: list[str], clients: int, requests: int, max_seconds: float) -> dict:
    before = rss_mb(pid)
    results: list = []
    half, stop = {}, threading.Event()
    watcher = threading.Thread(target=rss_at_half, args=(pid, results, clients * requests // 2, stop, half))
    watcher.start()
    deadline = time.monotonic() + max_seconds
    threads = [threading.Thread(target=client_loop, args=(url, pool, seed, requests, deadline, results))
               for seed in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max_seconds + 120)  # bounded even if a request hangs
    wall = time.perf_counter() - started
    stop.set()
    watcher.join()
    seconds = [s for _, s, e in results if e is None]
    errors = [e for _, _, e in results if e]
    p50, p95, p99 = np.percentile(seconds, [50, 95, 99]) if seconds else (float("nan"),) * 3
    after = rss_mb(pid)
    return {"clients": clients, "requests": len(results), "errors": len(errors), "error_examples": errors[:5],
            "wall_s": round(wall, 1), "requests_per_s": round(len(results) / wall, 2),
            "p50_ms": round(p50 * 1000, 1), "p95_ms": round(p95 * 1000, 1), "p99_ms": round(p99 * 1000, 1),
            "rss_before_mb": before, "rss_after_mb": after, "rss_growth_pct": round(100 * (after / before - 1), 1),
            "rss_half_mb": half.get("rss_half_mb"),
            "rss_growth_second_half_pct": round(100 * (after / half["rss_half_mb"] - 1), 1) if half else None,
            "per_endpoint_p50_ms": {ep: round(float(np.median([s for e2, s, e in results if e2 == ep and not e]))
                                              * 1000, 1)
                                    for ep in sorted({r[0] for r in results})}}


def warm_up(url: str, pool: list[str], reference_timeout_s: float) -> None:
    """One request of each kind, after waiting (bounded) for the reference map: the run measures steady state."""
    from gradio_client import Client

    client = Client(url, verbose=False, download_files=False)
    deadline = time.monotonic() + reference_timeout_s
    while time.monotonic() < deadline:
        if "reference map" in client.predict("\n".join(pool[:3]), api_name="/projection")["method"]:
            break
        time.sleep(2)
    for endpoint, size, extra, _ in REQUEST_MIX:
        client.predict("\n".join(pool[:size or 5]), *extra, api_name=endpoint)
    client.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--requests", type=int, default=30, help="per client")
    p.add_argument("--concurrency", default="2", help="comma-separated queue limits to compare, e.g. 1,2,4")
    p.add_argument("--max-seconds", type=float, default=900, help="per concurrency setting")
    p.add_argument("--quick", action="store_true", help="4 clients x 5 requests: checks it runs")
    p.add_argument("--data-dir", type=Path, default=Settings.from_env().training_data_dir)
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)
    if args.quick:
        args.clients, args.requests, args.max_seconds = 4, 5, 120
    pool = sentence_pool(args.data_dir)
    report = {"command": " ".join(["python", "-m", "benchmarks.load", *sys.argv[1:]]), "runs": []}
    for limit in [int(c) for c in args.concurrency.split(",")]:
        log = Path(tempfile.gettempdir()) / f"mtl_load_app_{limit}.log"
        with AppProcess(log, ["--data-dir", str(args.data_dir)], {"MTL_CONCURRENCY": str(limit)}) as server:
            server.wait_serving()
            warm_up(server.url, pool, reference_timeout_s=0 if args.quick else 240)
            result = {"concurrency_limit": limit,
                      **run_load(server.url, server.proc.pid, pool, args.clients, args.requests, args.max_seconds)}
        report["runs"].append(result)
        print(json.dumps(result), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if any(r["errors"] for r in report["runs"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
