"""How long the sentences are in word pieces: does truncation at 128 or 256 ever matter here?

    python -m experiments.token_lengths

all-MiniLM-L6-v2 was fine-tuned as a sentence encoder on sequences of at most 128 word pieces (its
model card); sentence-transformers truncates at 256 by default and this project does the same (parity
with the reference). For every split of the data folder: the longest sentence, the 99th percentile and
how many sentences pass 128 and 256 pieces ([CLS] and [SEP] included). Writes
experiments/results/token_lengths.json.
"""
from __future__ import annotations

import numpy as np

from experiments import save_result
from mtl_core.data.loading import read_texts
from mtl_core.model.encoder import SentenceEncoder
from mtl_core.settings import Settings

SPLITS = ["intent/train", "intent/test", "sentiment/train", "sentiment/dev", "sentiment/test",
          "oos/train", "oos/dev", "oos/test"]


def main() -> int:
    tokenizer = SentenceEncoder.load().tokenizer
    data_dir = Settings.from_env().training_data_dir
    report = {"command": "python -m experiments.token_lengths", "splits": {}}
    for split in SPLITS:
        texts = read_texts(data_dir / f"{split}.csv")
        lengths = np.array([len(ids) for ids in tokenizer(texts, add_special_tokens=True)["input_ids"]])
        report["splits"][split] = {"sentences": len(texts), "max": int(lengths.max()),
                                   "p99": float(np.percentile(lengths, 99)),
                                   "over_128": int((lengths > 128).sum()), "over_256": int((lengths > 256).sum())}
    save_result("token_lengths", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
