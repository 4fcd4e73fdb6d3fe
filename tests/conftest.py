"""Shared fixtures: a tiny randomly initialised BERT (no weights, seconds) and a tiny data folder."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from mtl_core.model.encoder import SentenceEncoder, bundled_backbone_path
from mtl_core.settings import Settings

DATA_DIR = Settings.from_env().training_data_dir  # $MTL_DATA_DIR, else data/ in the checkout
ROOT = Path(__file__).resolve().parents[1]
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
            max_position_embeddings=512)
# Examples of a task of one's own with an out-of-scope detector (the predict and bulk tests add it with add_task)
URGENCY = {"urgent": ["my account is blocked right now", "someone is stealing my money", "card stolen this minute",
                      "fraud on my account now"],
           "later": ["how do I change my address", "what are your opening hours", "can I get a paper statement",
                     "which currencies do you support"]}


def run_quick_benchmark(module: str, out: Path, timeout_s: float) -> subprocess.CompletedProcess:
    """`python -m MODULE --quick --out OUT --data-dir DATA_DIR`, which must succeed (else the end of its stderr)."""
    done = subprocess.run([sys.executable, "-m", module, "--quick", "--out", str(out), "--data-dir", str(DATA_DIR)],
                          check=False, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def tiny_bert(seed: int = 0) -> BertModel:
    torch.manual_seed(seed)
    return BertModel(BertConfig(vocab_size=30522, **TINY)).eval()


@pytest.fixture(scope="session")
def tokenizer():
    # The real tokenizer's vocabulary (a small local file); the model weights stay random.
    return AutoTokenizer.from_pretrained(bundled_backbone_path())


@pytest.fixture()
def tiny_encoder(tokenizer) -> SentenceEncoder:
    return SentenceEncoder(tiny_bert(), tokenizer, name="tiny").requires_grad_(False)


@pytest.fixture(scope="session")
def tiny_backbone_dir(tmp_path_factory, tokenizer) -> Path:
    """The tiny BERT saved as a folder, for code paths that load a backbone by name."""
    path = tmp_path_factory.mktemp("tiny_backbone")
    tiny_bert().save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


INTENT_ROWS = {"card_arrival": ["my card has not arrived", "where is my new card", "card still not delivered",
                                "when will my card come", "has my card been sent yet", "card arrival time"],
               "lost_or_stolen_card": ["I lost my card", "my card was stolen", "someone took my wallet",
                                       "cannot find my card anywhere", "report a stolen card", "card is missing"],
               "exchange_rate": ["what is the exchange rate", "how much is a euro in dollars",
                                 "currency rate today", "rate for pounds to yen", "exchange rate fee",
                                 "which rate do you use"]}
SENTIMENT_ROWS = {"negative": ["this is awful", "I hate it", "worst app ever", "so disappointed",
                               "terrible service", "it keeps crashing"],
                  "neutral": ["it is tuesday", "the store opens at nine", "I read the news",
                              "the meeting is at noon", "there is a bus", "we had lunch"],
                  "positive": ["I love this", "great job", "best day ever", "so happy with it",
                               "wonderful people", "amazing update"]}


INTENTS = ["card_arrival", "lost_or_stolen_card", "exchange_rate", "age_limit", "pin_blocked", "top_up_limits"]
TASK_LABELS = {"intent": INTENTS, "sentiment": list(SENTIMENT_ROWS)}  # the built-in tasks' labels of the tiny model


def two_task_model(encoder: SentenceEncoder, intents: list[str] = INTENTS, task_layers: int = 0):
    """The built-in tasks' untrained heads (intent with these labels, sentiment) on `encoder`."""
    from mtl_core.model.model import MultiTaskModel
    from mtl_core.tasks.definitions import builtin_heads

    return MultiTaskModel.build(encoder, builtin_heads({**TASK_LABELS, "intent": list(intents)}), task_layers)


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_backbone_dir, tmp_path_factory) -> Path:
    """A checkpoint with untrained heads on the tiny backbone."""
    from mtl_core.serving.predictor import Predictor
    from mtl_core.tasks import checkpoint

    predictor = Predictor.untrained(TASK_LABELS, SentenceEncoder.load(str(tiny_backbone_dir)))
    return checkpoint.save(predictor.model, tmp_path_factory.mktemp("ckpt"))


def write_split(path: Path, rows: dict[str, list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for label, texts in rows.items():
            writer.writerows([t, label] for t in texts)


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    """A data folder with the real layout and a few dozen rows per task."""
    root = tmp_path_factory.mktemp("data")
    for task, rows, splits in [("intent", INTENT_ROWS, ["train", "test"]),
                               ("sentiment", SENTIMENT_ROWS, ["train", "dev", "test"])]:
        (root / task).mkdir()
        (root / task / "labels.json").write_text(json.dumps(list(rows)))
        for split in splits:
            write_split(root / task / f"{split}.csv", rows)
    return root


def rest_call(app_url: str, endpoint: str, body: bytes) -> str:
    """POST a hand-written JSON body to Gradio's REST route and return the event stream's text."""
    request = urllib.request.Request(f"{app_url}/gradio_api/call{endpoint}", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        event_id = json.loads(response.read())["event_id"]
    with urllib.request.urlopen(f"{app_url}/gradio_api/call{endpoint}/{event_id}", timeout=60) as response:
        return response.read().decode("utf-8")
