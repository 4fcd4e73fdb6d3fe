"""The bad-input catalogue: every case through the running app (gradio_client) and through both CLIs.

    python -m benchmarks.catalogue [--url http://127.0.0.1:7860] [--out docs/reliability_catalogue.md]

Without --url it starts `python app.py` on 127.0.0.1 and a free port. For each case it records what the
app answered, checks that the server still answers a normal request afterwards, then runs
`python -m mtl_core predict` and `python -m mtl_core embed` on the same input as a file. The printed
Markdown table is the one in docs/reliability.md; tests/test_reliability.py asserts the same cases.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks.app_process import AppProcess
from mtl_core.commands import embed, predict
from mtl_core.settings import Settings

OK = "ok"
MEGABYTE = 1024 * 1024


@dataclass(frozen=True)
class Case:
    """One bad (or odd) input: text for /analyse, or a file for /load_file; the CLIs get it as a file."""

    name: str
    expect: str  # OK, or a fragment of the error message every path must give
    text: str | None = None
    file: tuple[str, bytes] | None = None  # (file name, content)
    cli_expect: str | None = None  # when the batch CLIs (no request limits) answer differently

    def as_file(self) -> tuple[str, bytes]:
        return self.file or ("input.txt", self.text.encode("utf-8"))


CASES = [
    Case("empty input", "no sentences", text=""),
    Case("whitespace only", "no sentences", text=" \n\t\n   \n"),
    Case("1 sentence", OK, text="Where is my card?"),
    Case("2 sentences", OK, text="Where is my card?\nI love this app"),
    Case("3 sentences", OK, text="Where is my card?\nI love this app\nWhy was I charged twice?"),
    Case("20 identical sentences", OK, text="the same sentence\n" * 20),
    Case("5 sentences, each 4 times", OK, text="\n".join([f"sentence number {i}" for i in range(5)] * 4)),
    Case("10,000 lines", "at most 2,000", text="\n".join(f"line {i}" for i in range(10_000)), cli_expect=OK),
    # the commands read a file row by row: a row of over 10,000 characters is an error row, and a file of no
    # usable row fails as a whole
    Case("one 1 MB line", OK, text="card " * (MEGABYTE // 5), cli_expect="at most 10,000 per row"),
    Case("NUL and control bytes", OK, text="nul\x00 here\nbell\x07 and escape\x1b[31m red",
         cli_expect="binary"),  # in a file, a NUL byte marks it as binary
    Case("emoji, right-to-left, zero-width, combining",
         OK, text="love it \U0001f600\U0001f44d\nשלום עולם مرحبا\nzero\u200bwidth\u200d join\ne\u0301 n\u0303 a\u0308"),
    Case("HTML and <script>", OK, text='<script>alert("x")</script>\n<img src=x onerror=alert(1)> <b>bold</b>'),
    Case(".csv without a text column", "no `text` column", file=("no_text.csv", b"id,sentence\n1,hello\n")),
    Case("non-UTF-8 file", "not UTF-8", file=("latin1.txt", "caf\u00e9 cr\u00e8me".encode("latin-1"))),
    Case("binary file renamed .csv", "binary", file=("image.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 50)),
    Case("wrong file type (.pdf)", "file type", file=("paper.pdf", b"%PDF-1.4 hello")),
    Case("upload over the 2 MB limit", "maximum", file=("big.txt", b"a" * (3 * MEGABYTE)),
         cli_expect="at most 10,000 per row"),
]


def summarise_analysis(out: dict) -> str:
    n = len(out["predictions"])
    truncated = sum(r["truncated"] for r in out["predictions"])
    projection = out["projection"].get("method", out["projection"].get("error"))
    note = f", {truncated} truncated" if truncated else ""
    return f"{OK}: {n} predictions{note}; map: {projection}"


def api_outcome(client, case: Case, folder: Path) -> str:
    """What the app answers: 'ok: ...' or 'error: <message>'."""
    from gradio_client import handle_file

    try:
        if case.text is not None:
            return summarise_analysis(client.predict(case.text, "input", 2, False, api_name="/analyse"))
        name, content = case.file
        path = folder / name
        path.write_bytes(content)
        _text, message = client.predict(handle_file(str(path)), api_name="/load_file")
        return f"error: {message}" if message.startswith("⚠️") else f"{OK}: {message}"
    except Exception as err:  # noqa: BLE001 - gradio_client raises several types; the message is the result
        return f"error: {str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}"


def server_healthy(client) -> bool:
    try:
        return client.predict("still serving?", api_name="/predict")[0]["text"] == "still serving?"
    except Exception:  # noqa: BLE001 - any failure to answer means not healthy
        return False


def cli_outcome(main, case: Case, folder: Path, extra: list[str]) -> str:
    """Exit status and the CLI's last stderr line, run in this process."""
    name, content = case.as_file()
    path = folder / name
    path.write_bytes(content)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = main(["--input", str(path), "--output", str(folder / "out.bin"), *extra])
    lines = [line for line in stderr.getvalue().splitlines() if line.strip() and "%|" not in line]
    last = lines[-1] if lines else ""
    return f"{OK}: {last}" if code == 0 else last


def matches(outcome: str, expect: str) -> bool:
    return outcome.startswith(OK) if expect == OK else outcome.startswith("error") and expect in outcome


def escape_cell(text: str, width: int = 150) -> str:
    text = text if len(text) <= width else text[:width] + "…"
    return text.replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def run_catalogue(client, cli_args: dict[str, list[str]]) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for case in CASES:
            api = api_outcome(client, case, folder).replace(f"{folder}/", "")
            row = {"case": case.name, "app": api, "app_as_expected": matches(api, case.expect),
                   "still_serving": server_healthy(client)}
            for cli_name, main in (("predict", predict.main), ("embed", embed.main)):
                outcome = cli_outcome(main, case, folder, cli_args[cli_name]).replace(f"{folder}/", "")
                row[cli_name] = outcome
                row[f"{cli_name}_as_expected"] = matches(outcome, case.cli_expect or case.expect)
            rows.append(row)
            print(f"{case.name}: app {api!r}; predict {row['predict']!r}", file=sys.stderr, flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| case | app (/analyse or /load_file) | still serving | predict CLI | embed CLI |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {escape_cell(r['case'])} | {escape_cell(r['app'])} | {'yes' if r['still_serving'] else 'NO'} "
                     f"| {escape_cell(r['predict'])} | {escape_cell(r['embed'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Run the bad-input catalogue against the app and the CLIs.")
    p.add_argument("--url", help="an app already running (default: start one on 127.0.0.1)")
    p.add_argument("--out", type=Path, help="also write the Markdown table here")
    args = p.parse_args(argv)
    from gradio_client import Client

    with contextlib.ExitStack() as stack:
        url = args.url
        if not url:
            log = Path(tempfile.gettempdir()) / "mtl_catalogue_app.log"
            server = stack.enter_context(AppProcess(log, ["--data-dir", str(Settings.from_env().training_data_dir)]))
            server.wait_serving()
            url = server.url
        rows = run_catalogue(Client(url, verbose=False), {"predict": [], "embed": []})
    table = markdown(rows)
    print(table)
    if args.out:
        args.out.write_text(table)
    failed = [r["case"] for r in rows
              if not (r["app_as_expected"] and r["still_serving"] and r["predict_as_expected"] and r["embed_as_expected"])]
    if failed:
        print(f"NOT as expected: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
