"""The standard CPU levers on the encoder, each measured against the served encoder in the same run.

    python -m benchmarks.encoder_levers [--sentences 2000] [--repeats 3] [--data-dir DIR] [--out FILE] [--quick]

For fp32 and (where the CPU multiplies it in hardware) bf16, the encoder as the app serves it, then one
lever at a time: eager attention instead of PyTorch's scaled-dot-product attention (transformers' default),
batch sizes, one torch thread instead of all, torch.compile (inductor), and for fp32 oneDNN's bf16 matmul
mode (torch.backends.mkldnn.matmul.fp32_precision = "bf16"), for bf16 the whole layer in bfloat16 (no
autocast; LayerNorm and softmax in bf16 too). Each: sentences/s (median of the repeats, variants
interleaved so drifts hit all alike), GFLOP/s of real (non-padding) work as a fraction of the machine's
dense matmul limit in its precision (benchmarks/run.py), and the lowest cosine of its embeddings to the fp32
served encoder's. The sentences: Banking77 test + SemEval dev, as benchmarks/run.py.

Then the model pass the app runs (encoder, task layers, heads, scope) in bf16 with the task layers in bf16
(MultiTaskModel.serve) against fp32 task layers, on the same 1,000 new sentences per round, alternating.
--task-layers-only measures just that and keeps the rest of the JSON file.

Writes JSON (default benchmarks/encoder_levers_results.json; --quick: runs/encoder_levers_quick.json) and the
table as a section of the RESULTS.md beside the JSON (by default benchmarks/RESULTS.md; not with --quick).
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from benchmarks.output import benchmark_parser, parse_benchmark_args, write_results, write_section
from benchmarks.run import flops_per_sentence, load_sentences, machine_info, matmul_peak_gflops, min_cosine, time_alternating
from mtl_core.model.encoder import SentenceEncoder, native_bf16, run_layers

Encoder = Callable[[list[str]], np.ndarray]


def with_threads(encode: Encoder, threads: int) -> Encoder:
    def run(texts: list[str]) -> np.ndarray:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return encode(texts)
        finally:
            torch.set_num_threads(before)
    return run


def eager(precision: str) -> SentenceEncoder:
    encoder = SentenceEncoder.load(precision="fp32")
    encoder.bert.config._attn_implementation = "eager"
    for layer in encoder.layers:
        layer.attention.self.config._attn_implementation = "eager"
    encoder.set_precision(precision)
    return encoder


def compiled(precision: str) -> SentenceEncoder:
    encoder = SentenceEncoder.load(precision=precision)
    layers = encoder.bf16_layers if encoder.bf16_layers is not None else encoder.layers
    for i, layer in enumerate(layers):
        layers[i] = torch.compile(layer, dynamic=True)
    return encoder


def all_bf16() -> SentenceEncoder:
    """Every weight in bfloat16 and no autocast: what autocast keeps in fp32 (LayerNorm, softmax) in bf16 too."""
    encoder = SentenceEncoder.load(precision="bf16")
    layers = copy.deepcopy(encoder.layers).to(torch.bfloat16)

    def hidden_states(input_ids, attention_mask, first_layer=0, last_layer=None, hidden=None):
        if hidden is None:
            hidden = encoder.bert.embeddings(input_ids=input_ids)
        return run_layers(hidden.to(torch.bfloat16), attention_mask, layers[first_layer:last_layer]).float()

    encoder.hidden_states = hidden_states
    return encoder


def variants(precision: str, batch: int, quick: bool) -> dict[str, Encoder]:
    served = SentenceEncoder.load(precision=precision)
    found: dict[str, Encoder] = {f"{precision}: served (sdpa, batch {batch}, all threads)": lambda t: served.encode(t, batch)}
    found[f"{precision}: eager attention"] = (lambda e: lambda t: e.encode(t, batch))(eager(precision))
    for size in ([64] if quick else [16, 64, 128]):
        found[f"{precision}: batch {size}"] = (lambda s: lambda t: served.encode(t, s))(size)
    found[f"{precision}: 1 thread (x cores for the machine)"] = with_threads(lambda t: served.encode(t, batch), 1)
    if precision == "fp32":
        fast = SentenceEncoder.load(precision="fp32")

        def onednn_bf16(t: list[str]) -> np.ndarray:
            torch.backends.mkldnn.matmul.fp32_precision = "bf16"
            try:
                return fast.encode(t, batch)
            finally:
                torch.backends.mkldnn.matmul.fp32_precision = "ieee"
        found["fp32: oneDNN bf16 matmul mode"] = onednn_bf16
    else:
        full = all_bf16()
        found["bf16: whole layers in bf16 (no autocast)"] = lambda t: full.encode(t, batch)
    if not quick:
        comp = compiled(precision)
        found[f"{precision}: torch.compile (inductor, dynamic shapes)"] = lambda t: comp.encode(t, batch)
    return found


def measure(texts: list[str], repeats: int, quick: bool) -> dict:
    reference = SentenceEncoder.load(precision="fp32")
    tokens = [len(ids) for ids in reference.tokenize_ids(texts).ids]
    config = reference.bert.config
    flops = sum(flops_per_sentence(t, config.num_hidden_layers, config.hidden_size, config.intermediate_size)
                for t in tokens)
    expected = reference.encode(texts)
    n, reps = (512, 2) if quick else (2048, 5)
    peak = {"fp32": matmul_peak_gflops(n, reps)}
    precisions = ["fp32"] + (["bf16"] if native_bf16() else [])
    if "bf16" in precisions:
        peak["bf16"] = matmul_peak_gflops(n, reps, torch.bfloat16)
    results = {"sentences": len(texts), "tokens_mean": sum(tokens) / len(tokens), "repeats": repeats,
               "peak_gflops": peak, "machine": machine_info(), "variants": {}}
    for precision in precisions:
        encoders = variants(precision, 32, quick)
        seconds, outputs = time_alternating(encoders, texts, repeats)
        for name, secs in seconds.items():
            median = statistics.median(secs)
            gflops = flops / median / 1e9
            threads = 1 if "1 thread" in name else torch.get_num_threads()
            own_peak = peak[precision] * threads / torch.get_num_threads()
            results["variants"][name] = {"sentences_per_s": round(len(texts) / median, 1),
                                         "gflops": round(gflops, 1), "fraction_of_peak": round(gflops / own_peak, 3),
                                         "min_cosine_vs_fp32": round(min_cosine(outputs[name], expected), 6),
                                         "seconds": [round(s, 3) for s in secs]}
            print(name, results["variants"][name], flush=True)
    return results


def task_layers_in_bf16(texts: list[str], rounds: int, size: int = 1000) -> dict:
    """Seconds of Predictor.run over the same `size` sentences with the task layers' bf16 copy and without
    it, alternating which goes first; medians and the ratio."""
    from mtl_core.serving.predictor import Predictor

    predictor = Predictor.load(precision="bf16")
    copy_, seconds = predictor.model.bf16_task_layers, {"bf16": [], "fp32": []}
    predictor.run(texts[:64])
    for r in range(rounds):
        batch = texts[(r * size) % (len(texts) - size):][:size]
        for name in (["bf16", "fp32"] if r % 2 == 0 else ["fp32", "bf16"]):
            predictor.model.bf16_task_layers = copy_ if name == "bf16" else None
            start = time.perf_counter()
            predictor.run(batch)
            seconds[name].append(round(time.perf_counter() - start, 3))
    medians = {k: statistics.median(v) for k, v in seconds.items()}
    return {"sentences": size, "rounds": rounds, "seconds": seconds, "median_s": medians,
            "speedup": round(medians["fp32"] / medians["bf16"], 3)}


def markdown(r: dict) -> str:
    machine = r["machine"]
    lines = ["## Encoder levers", "", f"`{r['command']}`: {machine['cpu']}, {machine['logical_cpus']} CPUs; dense matmul limit "
             + ", ".join(f"{p} {g:.0f} GFLOP/s" for p, g in r["peak_gflops"].items())
             + f"; {r['sentences']} sentences of {r['tokens_mean']:.1f} word pieces on average.", "",
             "| variant | sentences/s (median) | runs, s | GFLOP/s | of its precision's limit | min cosine to fp32 |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {name} | {v['sentences_per_s']:.0f} | {min(v['seconds']):.2f}-{max(v['seconds']):.2f} | {v['gflops']:.0f} | "
              f"{v['fraction_of_peak']:.0%} | {v['min_cosine_vs_fp32']:.6f} |" for name, v in r["variants"].items()]
    t = r.get("task_layers")
    if t:
        lines += ["", f"The app's model pass in bf16 over the same {t['sentences']:,} sentences, "
                  f"{t['rounds']} alternating rounds: "
                  f"task layers in bf16 {t['median_s']['bf16']:.2f} s, in fp32 {t['median_s']['fp32']:.2f} s (median): "
                  f"**{t['speedup']:.2f}x** (runs: bf16 {t['seconds']['bf16']}, fp32 {t['seconds']['fp32']})."]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("encoder_levers", __doc__)
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--task-layers-only", action="store_true", help="measure only the task layers in bf16")
    args = parse_benchmark_args(parser, argv)
    if args.quick:
        args.sentences, args.repeats = 100, 1
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    texts = load_sentences(args.data_dir, None)
    command = {"command": " ".join(["python", "-m", "benchmarks.encoder_levers", *sys.argv[1:]])}
    if args.task_layers_only:
        results = json.loads(args.out.read_text())
        results["task_layers"] = {**command, **task_layers_in_bf16(texts, 2 if args.quick else 6)}
    else:
        results = {**command, **measure(texts[:args.sentences], args.repeats, args.quick)}
        if native_bf16():
            results["task_layers"] = task_layers_in_bf16(texts, 2 if args.quick else 6, 100 if args.quick else 1000)
    write_results(args.out, results, markdown(results))
    if not args.quick:
        write_section(args.out.parent / "RESULTS.md", "encoder-levers", markdown(results))  # beside the JSON


if __name__ == "__main__":
    main()
