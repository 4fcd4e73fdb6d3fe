"""Step 1 in numbers: the sample sentences' embeddings, and what unmasked mean pooling gets wrong.

    python -m benchmarks.step1_check [--data-dir DIR]

Prints the first values and the norm of each sample embedding, then compares, for the intent test
sentences, our masked pooling and the original notebook's unmasked pooling (padding tokens averaged
in) against sentence-transformers' reference, each sentence batched with a 200-token sentence.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from mtl_core.data import read_texts
from mtl_core.encoder import SentenceEncoder, bundled_backbone_path, l2_normalize
from mtl_core.settings import Settings

SAMPLES = ["It CAN take a while for the points to collect",
           "Fetch Rewards is a game-changer for shoppers!",
           "I guess over the years since more people started using Fetch, they make it hard to get gift cards."]
LONG = " ".join(["the bank transferred my money to another account"] * 23)  # ~200 tokens


@torch.inference_mode()
def unmasked_embedding(encoder: SentenceEncoder, sentence: str) -> np.ndarray:
    """The notebook's bug: mean over every position of a padded batch, padding included."""
    batch = encoder.tokenize([sentence, LONG])
    hidden = encoder.hidden_states(**batch)  # (2, T, H)
    return l2_normalize(hidden.mean(dim=1))[0].numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(Settings.from_env().training_data_dir),
                        help="data folder (default: $MTL_DATA_DIR, else data/ in the checkout)")
    parser.add_argument("--limit", type=int, default=200, help="intent test sentences to compare")
    args = parser.parse_args()
    encoder = SentenceEncoder.load()
    vectors = encoder.encode(SAMPLES)
    print(f"shape {vectors.shape}, dtype {vectors.dtype}")
    for sentence, v in zip(SAMPLES, vectors):
        first = ", ".join(f"{x:+.4f}" for x in v[:5])
        print(f"{sentence[:48]!r:52} first 5: [{first}]  norm {np.linalg.norm(v):.6f}")

    from sentence_transformers import SentenceTransformer
    texts = read_texts(Path(args.data_dir) / "intent" / "test.csv")[: args.limit]
    reference = SentenceTransformer(bundled_backbone_path(), device="cpu").encode(texts, normalize_embeddings=True)
    masked = np.stack([encoder.encode([t, LONG], batch_size=2)[0] for t in texts])
    unmasked = np.stack([unmasked_embedding(encoder, t) for t in texts])
    for name, ours in [("masked mean (ours)", masked), ("unmasked mean (notebook)", unmasked)]:
        cos = (ours * reference).sum(axis=1)
        print(f"{name:26} cosine to reference over {len(texts)} sentences batched with a 200+ token one: "
              f"min {cos.min():.4f}, median {np.median(cos):.4f}")


if __name__ == "__main__":
    main()
