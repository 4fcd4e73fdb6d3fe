"""Step 1 in numbers: the sample sentences' embeddings, and what unmasked mean pooling gets wrong.

    python -m benchmarks.step1_check [--data-dir DIR] [--limit N] [--out FILE]

Encodes the sample sentences with the bundled all-MiniLM-L6-v2 in fp32 (first values, norm, pairwise
cosines), then compares, for the first N intent test sentences, our masked mean pooling and the original
notebook's unmasked pooling (padding tokens averaged in) against sentence-transformers' reference, each
sentence padded to the length of a 186-token batch-mate. Writes benchmarks/step1_results.json and the
block between `<!-- generated:step1 -->` and `<!-- /generated -->` in README.md (render_markdown), which
tests/test_step1_showcase.py checks against each other and against a fresh computation. About 20 s on 2
CPU cores.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import textwrap
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

from benchmarks.output import write_generated
from mtl_core.data.loading import read_texts
from mtl_core.model.encoder import SentenceEncoder, bundled_backbone_path, l2_normalize, mean_pool
from mtl_core.settings import ROOT, Settings

SAMPLES = ["It CAN take a while for the points to collect",
           "Fetch Rewards is a game-changer for shoppers!",
           "I guess over the years since more people started using Fetch, they make it hard to get gift cards.",
           "When will my new card be delivered?",  # two paraphrases (Banking77's card_arrival intent)
           "How long until my new card arrives?"]
LONG = " ".join(["the bank transferred my money to another account"] * 23)  # 186 word pieces with [CLS], [SEP]
FIRST = 6  # embedding values shown per sample
DEFAULT_OUT = ROOT / "benchmarks" / "step1_results.json"
README = ROOT / "README.md"
BLOCK = "step1"  # README.md: <!-- generated:step1 --> ... <!-- /generated -->
INTENT_TEST = "intent/test.csv"


def sample_results(encoder: SentenceEncoder, samples: list[str]) -> tuple[list[dict], list[list[float]]]:
    """Per sample its first values, dimension and norm; and the pairwise cosine matrix, at the rounding shown."""
    vectors = encoder.encode(samples)  # (N, 384), unit rows
    rows = [{"sentence": s, "dim": int(v.shape[0]), "first_values": [round(float(x), 4) for x in v[:FIRST]],
             "norm": round(float(np.linalg.norm(v)), 6)} for s, v in zip(samples, vectors)]
    cosine = (vectors @ vectors.T).clip(-1.0, 1.0)  # (N, N): a dot product, the rows being unit vectors
    return rows, [[round(float(c), 3) for c in row] for row in cosine]


@torch.inference_mode()
def pooled_with_long(encoder: SentenceEncoder, texts: list[str], batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Masked and unmasked (the notebook's: padding averaged in) mean pooling of each text when padded to
    LONG's length, both unit length, (N, H) each.

    Each batch is [text_1, ..., text_k, LONG]: a text's token states (padding positions included) depend
    only on its own tokens and the padded length, so this equals batching every text alone with LONG
    (as `encoder.encode([text, LONG])` would) in one pass for k texts instead of k passes."""
    masked, unmasked = [], []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start:start + batch_size]
        batch = encoder.tokenize([*chunk, LONG])  # (k + 1, T), T = LONG's length
        lengths = batch["attention_mask"].sum(dim=1)  # (k + 1,)
        if lengths[:-1].max() >= lengths[-1]:
            raise ValueError(f"a compared sentence has {int(lengths[:-1].max())} word pieces, LONG only {int(lengths[-1])}")
        hidden = encoder.hidden_states(**batch)  # (k + 1, T, H)
        masked.append(l2_normalize(mean_pool(hidden, batch["attention_mask"]))[:-1].numpy())  # (k, H)
        unmasked.append(l2_normalize(hidden.mean(dim=1))[:-1].numpy())  # (k + 1, T, H) -> (k, H)
    return np.concatenate(masked), np.concatenate(unmasked)


def reference_embeddings(texts: list[str]) -> np.ndarray:
    """sentence-transformers' own all-MiniLM-L6-v2 pipeline on the same bundled weights, (N, H) unit rows."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(bundled_backbone_path(), device="cpu")
    return model.encode(texts, batch_size=64, normalize_embeddings=True)


def pooling_results(encoder: SentenceEncoder, texts: list[str], decimals: int | None = 4) -> dict:
    """Median and min cosine to the reference of unmasked and masked pooling (rounded unless decimals=None)."""
    reference = reference_embeddings(texts)
    masked, unmasked = pooled_with_long(encoder, texts)
    out = {}
    for name, ours in [("unmasked", unmasked), ("masked", masked)]:
        cos = (ours * reference).sum(axis=1)  # (N,)
        values = {"median_cosine": float(np.median(cos)), "min_cosine": float(cos.min())}
        out[name] = {k: v if decimals is None else round(v, decimals) for k, v in values.items()}
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def prose(text: str) -> str:
    return textwrap.fill(text, width=110, break_long_words=False, break_on_hyphens=False)


def render_markdown(results: dict) -> str:
    """The README block: the samples' first values and norms, their cosine table, the pooling comparison."""
    samples, cosine, pooling = results["samples"], results["cosine"], results["pooling"]
    n = len(samples)
    lines = [prose(f"What the encoder really outputs (the bundled {results['model']}, {results['precision']}). This block "
                   f"and `benchmarks/step1_results.json` are written by `{results['command']}`; "
                   f"`tests/test_step1_showcase.py` recomputes every number."), "",
             f"| | sentence | first {FIRST} of its {samples[0]['dim']} values | norm |", "|---|---|---|---|"]
    for i, s in enumerate(samples, 1):
        values = ", ".join(f"{x:.4f}" for x in s["first_values"])
        lines.append(f"| S{i} | {s['sentence']} | `[{values}, …]` | {s['norm']:.6f} |")
    pairs = sorted(((cosine[i][j], i, j) for i in range(n) for j in range(i + 1, n)), reverse=True)
    (high, hi, hj), (low, li, lj) = pairs[0], pairs[-1]
    lines += ["", prose(f"Their cosine similarities (on unit vectors, the dot product; 1 = same direction): highest "
                        f"S{hi + 1}–S{hj + 1} ({high:.3f}), lowest S{li + 1}–S{lj + 1} ({low:.3f})."), "",
              "| | " + " | ".join(f"S{j}" for j in range(1, n + 1)) + " |", "|---" * (n + 1) + "|"]
    for i in range(n):
        cells = [f"{cosine[i][j]:.3f}" if j >= i else "" for j in range(n)]
        lines.append(f"| S{i + 1} | " + " | ".join(cells) + " |")
    um, m = pooling["unmasked"], pooling["masked"]
    lines += ["", prose(f"Why the mean must skip padding: the first {pooling['sentences']} Banking77 test sentences, "
                        f"each padded to the length of a {pooling['batch_mate_tokens']}-token batch-mate, against "
                        f"sentence-transformers' reference: unmasked mean pooling (padding averaged in, as in the "
                        f"original notebook) has a median cosine of **{um['median_cosine']:.4f}** (min "
                        f"{um['min_cosine']:.4f}); masked mean pooling (ours) **{m['median_cosine']:.4f}** (min "
                        f"{m['min_cosine']:.4f}).")]
    return "\n".join(lines)


def command_line(argv: list[str]) -> str:
    """The command as run, minus --data-dir and --out (paths of this machine)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--data-dir", "--out"):
            skip = True
        elif not arg.startswith(("--data-dir=", "--out=")):
            kept.append(arg)
    return " ".join(["python -m benchmarks.step1_check", *kept])


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks.step1_check", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="data folder (default: $MTL_DATA_DIR, else data/ in the checkout)")
    parser.add_argument("--limit", type=int, default=200, help="intent test sentences to compare (default: 200)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="results JSON (default: benchmarks/step1_results.json; only then is README.md rewritten)")
    args = parser.parse_args(argv)
    data_dir = args.data_dir or Settings.from_env().training_data_dir
    started = time.perf_counter()

    encoder = SentenceEncoder.load()  # fp32, whatever MTL_PRECISION says: these are the reference values
    samples, cosine = sample_results(encoder, SAMPLES)
    print(f"{len(samples)} samples -> ({len(samples)}, {samples[0]['dim']}) float32, unit rows")
    for i, s in enumerate(samples, 1):
        first = ", ".join(f"{x:+.4f}" for x in s["first_values"])
        print(f"S{i} {s['sentence'][:48]!r:52} first {FIRST}: [{first}]  norm {s['norm']:.6f}")
    print("cosine:\n" + "\n".join(f"S{i}  " + "  ".join(f"{c:6.3f}" for c in row) for i, row in enumerate(cosine, 1)))

    path = Path(data_dir) / INTENT_TEST
    texts = read_texts(path)[: args.limit]
    print(f"\ncomparing pooling on {len(texts)} sentences of {path} (~15 s on 2 CPU cores) ...", flush=True)
    pooling = pooling_results(encoder, texts)
    for name, label in [("masked", "masked mean (ours)"), ("unmasked", "unmasked mean (notebook)")]:
        print(f"{label:26} cosine to reference: min {pooling[name]['min_cosine']:.4f}, "
              f"median {pooling[name]['median_cosine']:.4f}")

    results = {"command": command_line(argv), "model": "all-MiniLM-L6-v2", "precision": encoder.precision,
               "samples": samples, "cosine": cosine,
               "pooling": {"sentences": len(texts), "data": INTENT_TEST, "data_sha256": sha256(path),
                           "batch_mate_tokens": len(encoder.tokenize_ids([LONG]).ids[0]),
                           "reference": "SentenceTransformer(bundled).encode(normalize_embeddings=True)", **pooling},
               "versions": {p: version(p) for p in ("torch", "transformers", "sentence-transformers")}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")
    if args.out.resolve() == DEFAULT_OUT.resolve():
        write_generated(README, BLOCK, render_markdown(results))
        print(f"rewrote the {BLOCK} block of {README}")
    print(f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
