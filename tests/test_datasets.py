"""`python -m mtl_core data prepare`: the data folder rebuilt from tiny originals in their published formats."""
import csv
import functools
import hashlib
import http.server
import json
import threading

import pytest

from mtl_core.commands import data as data_command
from mtl_core.data import loading as data
from mtl_core.data import originals as datasets
from tests.conftest import DATA_DIR

SEMEVAL = "datastories-semeval2017-task4/dataset/Subtask_A"


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def originals(tmp_path):
    root = tmp_path / "originals"
    write(root / "task-specific-datasets/banking_data/train.csv",
          'text,category\nwhere is my card?,card_arrival\n"fees, and more fees",card_fee\n')
    write(root / "task-specific-datasets/banking_data/test.csv", "text,category\ncard not here,card_arrival\n")
    write(root / "task-specific-datasets/banking_data/categories.json", '[\n  "card_arrival",\n  "card_fee"\n]')
    for name in datasets.SEMEVAL_POOL:
        write(root / f"{SEMEVAL}/downloaded/{name}.tsv", "")
    write(root / f"{SEMEVAL}/downloaded/twitter-2013train-A.tsv",
          "1\tpositive\tgreat   day\n2\tnegative\tin the test\n3\tobjective\tnot a label\n4\tneutral\ttab\tinside\n")
    write(root / f"{SEMEVAL}/downloaded/twitter-2016test-A.tsv", "5\tnegative\tgreat day\n6\tneutral\t \n7\tpositive\tlast\n")
    write(root / f"{SEMEVAL}/{datasets.SEMEVAL_TEST}", "8\tnegative\tin the test\n9\tpositive\tsecond\n")
    clinc = {f"{prefix}{split}": rows for split in ("train", "val", "test") for prefix, rows in
             (("oos_", [["what is life", "oos"]]),
              ("", [["play jazz", "play_music"], ["my balance", "balance"], ["rate for euros", "exchange_rate"]]))}
    write(root / "oos-eval/data/data_full.json", json.dumps(clinc))
    write(root / "oos-eval/data/domains.json",
          json.dumps({"music": ["play_music"], "banking": ["balance"], "travel": ["exchange_rate"]}))
    return root


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return [tuple(row) for row in csv.reader(f)][1:]


def test_prepare_builds_every_file_by_the_published_recipe(tmp_path, originals, monkeypatch):
    monkeypatch.setattr(datasets, "SENTIMENT_DEV_SIZE", 1)
    out = tmp_path / "data"
    differences = datasets.prepare(out, originals)
    # tiny fixtures: every file differs from the real data, and is said, except the fixed label list
    assert sorted(d.split(":")[0] for d in differences) == sorted(set(datasets.CHECKSUMS) - {"sentiment/labels.json"})
    assert read_csv(out / "intent/train.csv") == [("where is my card?", "card_arrival"),
                                                  ("fees, and more fees", "card_fee")]
    assert (out / "intent/labels.json").read_text() == '[\n  "card_arrival",\n  "card_fee"\n]'  # as published
    assert read_csv(out / "sentiment/test.csv") == [("in the test", "negative"), ("second", "positive")]
    pool = read_csv(out / "sentiment/dev.csv") + read_csv(out / "sentiment/train.csv")
    # whitespace normalised, other labels skipped, test texts, empty texts and repeats dropped
    assert sorted(pool) == sorted([("great day", "positive"), ("tab inside", "neutral"), ("last", "positive")])
    assert len(read_csv(out / "sentiment/dev.csv")) == 1
    assert json.loads((out / "sentiment/labels.json").read_text()) == ["negative", "neutral", "positive"]
    for split in ("train", "dev", "test"):  # oos first, banking requests left out
        assert read_csv(out / f"oos/{split}.csv") == [("what is life", "oos"), ("play jazz", "music.play_music")]
    assert data.load_task(out, "sentiment").test.texts == ["in the test", "second"]  # the loader reads it


def test_a_differing_file_is_named_with_both_hashes(tmp_path, originals, monkeypatch, capsys):
    built = {**datasets.build_intent(originals), **datasets.build_sentiment(originals), **datasets.build_oos(originals)}
    expected = {name: hashlib.sha256(content).hexdigest() for name, content in built.items()}
    expected["oos/dev.csv"] = "0" * 64
    monkeypatch.setattr(datasets, "CHECKSUMS", expected)
    assert data_command.main(["prepare", "--out", str(tmp_path / "data"), "--from", str(originals)]) == 2
    err = capsys.readouterr().err
    assert "1 file(s) differ" in err and "oos/dev.csv" in err and "0" * 64 in err and "intent/" not in err
    expected["oos/dev.csv"] = hashlib.sha256(built["oos/dev.csv"]).hexdigest()
    assert data_command.main(["prepare", "--out", str(tmp_path / "data"), "--from", str(originals)]) == 0
    assert "every file matches" in capsys.readouterr().err


def test_missing_originals_say_what_to_clone(tmp_path, capsys):
    assert data_command.main(["prepare", "--out", str(tmp_path / "data"), "--from", str(tmp_path / "nothing")]) == 2
    assert "git clone https://github.com/PolyAI-LDN/task-specific-datasets" in capsys.readouterr().err


def test_download_fetches_the_originals_over_http(tmp_path, originals, monkeypatch):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(originals))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # loopback only
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(datasets, "RAW_URL", f"http://127.0.0.1:{server.server_port}/{{folder}}/{{file}}")
        downloaded = tmp_path / "downloaded"
        datasets.download(downloaded)
    finally:
        server.shutdown()
    for repository in datasets.REPOSITORIES:
        for file in repository.files:
            rel = f"{repository.folder}/{file}"
            assert (downloaded / rel).read_bytes() == (originals / rel).read_bytes(), rel


@pytest.mark.skipif(not (DATA_DIR / "intent").is_dir(), reason="data folder not present")
def test_checksums_are_those_of_the_data_folder():
    for name, digest in datasets.CHECKSUMS.items():
        assert hashlib.sha256((DATA_DIR / name).read_bytes()).hexdigest() == digest, name
