"""Rebuild the data folder (intent/, sentiment/, oos/) byte for byte from the three public originals.

The command is `python -m mtl_core data prepare --out DIR --from ORIGINALS [--download]`. ORIGINALS holds
one folder per public repository, in the repository's own layout (what `git clone` makes):

  ORIGINALS/task-specific-datasets/banking_data/{train.csv,test.csv,categories.json}   PolyAI-LDN
  ORIGINALS/datastories-semeval2017-task4/dataset/Subtask_A/...                         cbaziotis
  ORIGINALS/oos-eval/data/{data_full.json,domains.json}                                  clinc

Every file written is checked against the SHA-256 of the data folder the reported numbers were measured
on (CHECKSUMS); a file that differs is named with both hashes. The recipe of each file is in the
docstring of its builder.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from mtl_core.data.loading import DataError
from mtl_core.tasks.definitions import SENTIMENT

SENTIMENT_DEV_SIZE, SENTIMENT_SEED = 2_000, 7833
SEMEVAL_FOLDER = "dataset/Subtask_A"
SEMEVAL_POOL = ["twitter-2013train-A", "twitter-2013dev-A", "twitter-2013test-A", "twitter-2014test-A",
                "twitter-2014sarcasm-A", "twitter-2015train-A", "twitter-2015test-A", "twitter-2016train-A",
                "twitter-2016dev-A", "twitter-2016devtest-A", "twitter-2016test-A"]
SEMEVAL_TEST = "gold/SemEval2017-task4-test.subtask-A.english.txt"
# CLINC150 requests that are banking requests, so neither in nor out of Banking77's scope: left out.
CLINC_BANKING_DOMAINS = {"banking", "credit_cards"}
CLINC_BANKING_INTENTS = {"travel.exchange_rate", "travel.travel_notification", "work.direct_deposit"}
CLINC_SPLITS = {"train": "train", "dev": "val", "test": "test"}
RAW_URL = "https://raw.githubusercontent.com/{github}/master/{file}"  # where --download reads each file


@dataclass(frozen=True)
class Repository:
    github: str  # owner/name
    folder: str  # its folder under ORIGINALS
    files: tuple[str, ...]  # the files the builders read, relative to the repository root

    def url(self, file: str) -> str:
        return RAW_URL.format(github=self.github, folder=self.folder, file=file)


BANKING77 = Repository("PolyAI-LDN/task-specific-datasets", "task-specific-datasets",
                       ("banking_data/train.csv", "banking_data/test.csv", "banking_data/categories.json"))
SEMEVAL = Repository("cbaziotis/datastories-semeval2017-task4", "datastories-semeval2017-task4",
                     tuple(f"{SEMEVAL_FOLDER}/downloaded/{name}.tsv" for name in SEMEVAL_POOL)
                     + (f"{SEMEVAL_FOLDER}/{SEMEVAL_TEST}",))
CLINC = Repository("clinc/oos-eval", "oos-eval", ("data/data_full.json", "data/domains.json"))
REPOSITORIES = (BANKING77, SEMEVAL, CLINC)

CHECKSUMS = {  # SHA-256 of the data folder every reported number was measured on
    "intent/test.csv": "2f7f1eb84e9ab7ff621fbe587e434226dee05638efbc2bebfe895766209136ab",
    "intent/train.csv": "e216b38e21e95fe4b952c7e9d5c25466443751a4aff050776924e10d13e31d68",
    "intent/labels.json": "53261da888122daf2d120d925458631d9619e15d82e56052e7a42e535ce32b63",
    "sentiment/dev.csv": "c3bc743312d4fd9cdab9ea959230c6894f7daebc531f5367dfd6305c43e578d8",
    "sentiment/test.csv": "63e658c4999f0ac0ec966c96827be57fd16aa6283e9f01f1b879b3e1ae0fe532",
    "sentiment/train.csv": "ee54b17b5783b2bf7d7f42458268e6685afb52eb916b8cc753276120072585fe",
    "sentiment/labels.json": "e353a148fa24ac600e906980dac1b2658f467d392cfde09096102f2b69bfcd89",
    "oos/dev.csv": "3631ce8cf000ebf31df5532ff176f82bb00b94aaac3ccb99abbc1b7a3567a834",
    "oos/test.csv": "69d990ff4bf1d74669c7aaf1a793d56f04aabf277a3b69004e3e9634b56ea096",
    "oos/train.csv": "08ff83e5c448b6eefffbd776eaf117f329a676e9719ef53207661862be3fecd2",
}


def csv_bytes(rows: list[tuple[str, str]]) -> bytes:
    """Header `text,label`, Python's csv writer defaults (\\r\\n line ends, minimal quoting), UTF-8."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["text", "label"])
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def source(originals: Path, repository: Repository, file: str) -> Path:
    path = originals / repository.folder / file
    if not path.is_file():
        raise DataError(f"{path} not found: --from must hold {repository.github} as {repository.folder}/ "
                        f"(git clone https://github.com/{repository.github} {originals / repository.folder}), "
                        "or add --download")
    return path


def build_intent(originals: Path) -> dict[str, bytes]:
    """Banking77 train.csv and test.csv, rows in their original order, column `category` renamed `label`;
    labels.json is categories.json as published."""
    files = {"intent/labels.json": source(originals, BANKING77, "banking_data/categories.json").read_bytes()}
    for split in ("train", "test"):
        with open(source(originals, BANKING77, f"banking_data/{split}.csv"), newline="", encoding="utf-8") as f:
            files[f"intent/{split}.csv"] = csv_bytes([(r["text"], r["category"]) for r in csv.DictReader(f)])
    return files


def semeval_rows(path: Path) -> list[tuple[str, str]]:
    """(text, label) of a SemEval file: `id<TAB>label<TAB>text...`; the text is every field after the
    label joined with a tab, whitespace-normalised; lines with another label are skipped."""
    rows = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        fields = line.split("\t")
        if len(fields) >= 3 and fields[1] in SENTIMENT.fixed_labels:
            rows.append((" ".join("\t".join(fields[2:]).split()), fields[1]))
    return rows


def build_sentiment(originals: Path) -> dict[str, bytes]:
    """Test = the official SemEval-2017 4A test in file order. Pool = the 2013-2016 files in SEMEVAL_POOL
    order, first occurrence of each text, no empty text, no text of the test; shuffled with
    random.Random(SENTIMENT_SEED); the first SENTIMENT_DEV_SIZE are dev, the rest train."""
    test = semeval_rows(source(originals, SEMEVAL, f"{SEMEVAL_FOLDER}/{SEMEVAL_TEST}"))
    seen = {text for text, _ in test}
    pool = []
    for name in SEMEVAL_POOL:
        for text, label in semeval_rows(source(originals, SEMEVAL, f"{SEMEVAL_FOLDER}/downloaded/{name}.tsv")):
            if text and text not in seen:
                seen.add(text)
                pool.append((text, label))
    random.Random(SENTIMENT_SEED).shuffle(pool)
    return {"sentiment/train.csv": csv_bytes(pool[SENTIMENT_DEV_SIZE:]),
            "sentiment/dev.csv": csv_bytes(pool[:SENTIMENT_DEV_SIZE]),
            "sentiment/test.csv": csv_bytes(test),
            "sentiment/labels.json": json.dumps(list(SENTIMENT.fixed_labels)).encode("utf-8")}


def build_oos(originals: Path) -> dict[str, bytes]:
    """CLINC150 (data_full.json) as published: per split the official `oos` rows first, then the in-scope
    rows in file order labelled `domain.intent`, minus the banking requests (CLINC_BANKING_*)."""
    full = json.loads(source(originals, CLINC, "data/data_full.json").read_text(encoding="utf-8"))
    domains = json.loads(source(originals, CLINC, "data/domains.json").read_text(encoding="utf-8"))
    domain_of = {intent: domain for domain, intents in domains.items() for intent in intents}
    files = {}
    for split, name in CLINC_SPLITS.items():
        rows = [(text, "oos") for text, _ in full[f"oos_{name}"]]
        for text, intent in full[name]:
            label = f"{domain_of[intent]}.{intent}"
            if domain_of[intent] not in CLINC_BANKING_DOMAINS and label not in CLINC_BANKING_INTENTS:
                rows.append((text, label))
        files[f"oos/{split}.csv"] = csv_bytes(rows)
    return files


def download(originals: Path) -> None:
    """Fetch the files the builders read from GitHub into ORIGINALS (only those not there yet)."""
    missing = [(r, f) for r in REPOSITORIES for f in r.files if not (originals / r.folder / f).is_file()]
    for repository, file in tqdm(missing, desc="downloading the originals", unit="file"):
        target = originals / repository.folder / file
        target.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(repository.url(file), timeout=60) as response:
            target.write_bytes(response.read())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def difference(name: str, data: bytes) -> str | None:
    digest = sha256(data)
    return None if digest == CHECKSUMS[name] else f"{name}: SHA-256 {digest}, expected {CHECKSUMS[name]}"


def prepare(out: Path, originals: Path) -> list[str]:
    """Write every data file under `out`; return one line per file whose SHA-256 differs (empty: all match)."""
    files = {**build_intent(originals), **build_sentiment(originals), **build_oos(originals)}
    for name, data in sorted(files.items()):
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return [d for name, data in sorted(files.items()) if (d := difference(name, data))]


def check(folder: Path) -> list[str]:
    """One line per file of a built data folder that is missing or differs from CHECKSUMS (empty: all match)."""
    missing = [f"{name}: missing" for name in sorted(CHECKSUMS) if not (folder / name).is_file()]
    return missing or [d for name in sorted(CHECKSUMS) if (d := difference(name, (folder / name).read_bytes()))]
