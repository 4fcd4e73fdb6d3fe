"""/task_predict on the running app through gradio_client: a task of your own, statelessly, beside the shipped
tasks, with clear errors for bad examples; and the documented snippet for it (docs/fewshot.md), run as a user would."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
from gradio_client.exceptions import AppError

pytest_plugins = ["app_server"]
pytestmark = [pytest.mark.app, pytest.mark.integration]

SENTENCES = ["My card still hasn't arrived.", "I love this app!", "Why was I charged twice?"]
EXAMPLES = "\n".join(["delivery: where is my card?", "delivery: card not here yet", "delivery: when does it ship",
                      "praise: great app", "praise: love it", "praise: best bank ever",
                      "fees: why this charge?", "fees: extra fee on my statement", "fees: charged twice"])
DOCS = Path(__file__).resolve().parents[1] / "docs" / "fewshot.md"
DOCS_URL = "http://127.0.0.1:7860/"


def documented_snippet() -> str:
    """The gradio_client snippet for /task_predict in docs/fewshot.md, exactly as a user copies it."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)
    [snippet] = [b for b in blocks if "/task_predict" in b]
    return snippet


def test_task_predict_is_listed_with_text_first_and_a_default_name(client):
    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    params = named["/task_predict"]["parameters"]
    assert [p["parameter_name"] for p in params] == ["text", "examples", "name", "improve"]
    assert [p["parameter_has_default"] for p in params] == [False, False, True, True]
    assert params[2]["parameter_default"] == "yours" and params[3]["parameter_default"] is False


def test_task_predict_can_improve_the_task_first(client):
    out = client.predict("\n".join(SENTENCES), EXAMPLES, "topic", True, api_name="/task_predict")
    assert out["task"]["improved"]["layers"] == 2 and out["task"]["scope_recall"] == 0.98
    assert all(p["topic"]["closest"] in {"delivery", "praise", "fees"} for p in out["predictions"])


def test_task_predict_returns_the_report_and_every_sentence_with_the_third_task(client):
    out = client.predict("\n".join(SENTENCES), EXAMPLES, "topic", api_name="/task_predict")
    report = out["task"]
    assert report["name"] == "topic" and report["counts"] == {"delivery": 3, "praise": 3, "fees": 3}
    assert report["method"] in report["candidates"] and len(report["candidates"]) == 4
    assert 0.0 <= report["cv_accuracy"] <= 1.0 and report["folds"] == 3 and report["duplicates_dropped"] == 0
    assert isinstance(report["scope_threshold"], float)
    records = out["predictions"]
    assert [r["text"] for r in records] == SENTENCES
    for r in records:
        assert list(r) == ["text", "intent", "sentiment", "topic", "truncated"]
        topic = r["topic"]
        assert set(topic["probs"]) == {"delivery", "praise", "fees"} and topic["closest"] in topic["probs"]
        assert topic["label"] == (topic["closest"] if topic["in_scope"] else "none")
        assert topic["score"] == max(topic["probs"].values())
        assert sum(topic["probs"].values()) == pytest.approx(1.0, abs=1e-4)
        assert isinstance(topic["in_scope"], bool) and isinstance(topic["scope_score"], float)
    # the real embedding separates these: each sentence gets the label a person would give it
    assert [r["topic"]["closest"] for r in records] == ["delivery", "praise", "fees"]
    default = client.predict("hello", EXAMPLES, api_name="/task_predict")
    assert default["task"]["name"] == "yours" and "yours" in default["predictions"][0]


def test_shipped_tasks_are_unchanged_by_a_task_predict_call(client):
    text = "\n".join(SENTENCES)
    before = client.predict(text, api_name="/predict")
    out = client.predict(text, EXAMPLES, "topic", api_name="/task_predict")
    after = client.predict(text, api_name="/predict")
    assert after == before  # nothing kept on the server: no third task, the same numbers
    assert all("topic" not in r for r in after)
    for mine, shipped in zip(out["predictions"], before, strict=True):  # the same pass, the same answers
        for task in ("intent", "sentiment"):
            assert mine[task]["label"] == shipped[task]["label"]
            assert mine[task]["score"] == pytest.approx(shipped[task]["score"], abs=1e-5)
        assert mine["intent"]["in_scope"] == shipped["intent"]["in_scope"]


@pytest.mark.parametrize("text, examples, name, match", [
    ("hello", "delivery: a\ndelivery: b", "t", "only the label 'delivery'"),
    ("hello", "delivery: a\ndelivery: b\npraise: c", "t", "fewer than 2 examples"),
    ("hello", "delivery: a\nno colon\npraise: c\npraise: d", "t", "is not `label: example`"),
    ("hello", "", "t", "no examples"),
    ("hello", "a: x\na: y\nb: x\nb: z", "t", "two different labels"),
    ("hello", EXAMPLES, "intent", "already has a task named 'intent'"),
    ("hello", EXAMPLES, "My Task", "must start with a lowercase letter"),
    ("", EXAMPLES, "t", "no sentences"),
    ("x\n" * 2001, EXAMPLES, "t", "at most 2,000"),
])
def test_bad_examples_are_clear_errors(client, text, examples, name, match):
    with pytest.raises(AppError, match=match):
        client.predict(text, examples, name, api_name="/task_predict")


def test_the_server_still_serves_after_bad_task_requests(client):
    for examples in ("", "only: one\nonly: two", "\x00\x01 binary: junk"):
        with pytest.raises(AppError):
            client.predict("hello", examples, "t", api_name="/task_predict")
    assert client.predict("still here?", api_name="/predict")[0]["text"] == "still here?"
    out = client.predict("still here?", EXAMPLES, "topic", api_name="/task_predict")
    assert out["predictions"][0]["text"] == "still here?" and "topic" in out["predictions"][0]


def test_the_documented_snippet_runs_as_written(app_url):
    snippet = documented_snippet()
    assert snippet.count(DOCS_URL) == 1
    code = snippet.replace(DOCS_URL, f"{app_url}/")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "docs/fewshot.md snippet", "exec"), {})  # noqa: S102 - the documented snippet itself
    assert printed.getvalue().splitlines()[-2:] == ["delivery", "delivery"]  # its label (in scope), its closest label


def test_a_task_named_text_keeps_the_sentence_in_each_record(client):
    """`text` is every record's sentence: a task of that name is refused, or its answer goes elsewhere."""
    try:
        out = client.predict("hello there", EXAMPLES, "text", api_name="/task_predict")
    except AppError as err:
        assert "text" in str(err)
        return
    assert out["predictions"][0]["text"] == "hello there", out["predictions"][0]
