"""Reading user input, with clear errors: sentences (.txt: one per line; .csv: a `text` column, and the other
columns beside it, which the predict command carries through) and a task's labelled examples (`label: example`
lines, or a .csv with `text` and `label` columns)."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from mtl_core.settings import MAX_CHARS, MAX_SENTENCES

SUPPORTED_SUFFIXES = (".txt", ".csv")
# A spreadsheet runs a cell that begins with one of these as a formula (CSV injection); such a text is written
# with a leading apostrophe, which spreadsheets show as text and hide, and which reading strips again.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class InputError(ValueError):
    """A user-supplied file or text cannot be used; the message says why and what to do."""


def spreadsheet_safe(value: object) -> object:
    """A text cell as CSV downloads write it: "'=1+2" for "=1+2", so that a spreadsheet shows it and never
    runs it; anything else unchanged."""
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def from_spreadsheet(value: str) -> str:
    """spreadsheet_safe undone: a CSV this app wrote reads back as it was."""
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_STARTS) else value


def split_lines(text: str) -> list[str]:
    """One sentence per non-blank line, surrounding whitespace removed."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def decode_utf8(data: bytes, name: str) -> str:
    if b"\x00" in data[:8192]:
        raise InputError(f"{name} looks like a binary file, not text; give a UTF-8 .txt or .csv")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{name} is not UTF-8 text (bad byte at position {err.start}); "
                         "re-save it as UTF-8") from err


def check_header(fields: list[str], columns: tuple[str, ...], name: str) -> None:
    missing = [c for c in columns if c not in fields]
    if missing:
        wanted = " and ".join(f"`{c}`" for c in columns)
        raise InputError(f"{name} has no {' or '.join(f'`{c}`' for c in missing)} column (columns: {fields[:10]}); "
                         f"add a header row with {wanted} column{'s' if len(columns) > 1 else ''}")


def csv_rows(text: str, name: str, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """The rows of a CSV with a header that has `columns` (other columns are ignored)."""
    try:
        reader = csv.DictReader(io.StringIO(text))
        check_header(reader.fieldnames or [], columns, name)
        return [{c: from_spreadsheet((row[c] or "").strip()) for c in columns} for row in reader]
    except csv.Error as err:
        raise InputError(f"{name} is not a readable CSV file ({err})") from err


def column_names(header: list[str]) -> list[str]:
    """A header's names, a column without one called `column_<position>` (1 = the first column)."""
    return [h or f"column_{i}" for i, h in enumerate(header, 1)]


@dataclass(frozen=True)
class SentenceTable:
    """The sentences of a .txt or .csv file and, for a .csv, its other columns: `values[i]` holds the values
    of `columns` (the header's names but `text`'s, in the file's order) on sentence i's row, as written (no
    whitespace trimmed). A .txt has no other columns."""

    texts: list[str]
    columns: list[str] = field(default_factory=list)
    values: list[list[str]] = field(default_factory=list)


def table_from_csv(text: str, name: str) -> SentenceTable:
    """The sentences of the first column named `text`, each with its row's other values. A row with an empty
    text is skipped, other columns and all (a blank line is no row); a short row's missing values are empty,
    values beyond the header are dropped."""
    try:
        reader = csv.reader(io.StringIO(text))
        header = next(reader, [])
        check_header(header, ("text",), name)
        at = header.index("text")
        others = [i for i in range(len(header)) if i != at]
        table = SentenceTable([], [column_names(header)[i] for i in others], [])
        for record in reader:
            if not record:
                continue
            record += [""] * (len(header) - len(record))
            sentence = from_spreadsheet(record[at].strip())
            if sentence:
                table.texts.append(sentence)
                table.values.append([record[i] for i in others])
        return table
    except csv.Error as err:
        raise InputError(f"{name} is not a readable CSV file ({err})") from err


def parse_table(data: bytes, name: str) -> SentenceTable:
    """Sentences (and a .csv's other columns) from the bytes of a .txt or .csv file called `name`."""
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InputError(f"{name}: unsupported file type {suffix or '(none)'!r}; use .txt or .csv")
    text = decode_utf8(data, name)
    if suffix == ".csv":
        table = table_from_csv(text, name)
    else:
        lines = split_lines(text)
        table = SentenceTable(lines, [], [[] for _ in lines])
    if not table.texts:
        raise InputError(f"{name} contains no sentences")
    return table


def parse_sentences(data: bytes, name: str) -> list[str]:
    """Sentences from the bytes of a .txt or .csv file called `name`."""
    return parse_table(data, name).texts


def clean_text(text: str) -> str:
    """Replace what cannot be UTF-8 encoded (lone surrogates from a client) instead of failing later."""
    return text.encode("utf-8", errors="replace").decode("utf-8")


def check_count(sentences: list[str], source: str = "the input", max_sentences: int = MAX_SENTENCES) -> list[str]:
    if not sentences:
        raise InputError(f"{source} has no sentences: type or paste at least one, one per line")
    if len(sentences) > max_sentences:
        raise InputError(f"{source} has {len(sentences):,} sentences; at most {max_sentences:,} per request. "
                         "Split it into smaller parts.")
    return sentences


def check_length(text: str, max_chars: int = MAX_CHARS) -> str:
    if len(text) > max_chars:
        raise InputError(f"the input has {len(text):,} characters; at most {max_chars:,} per request. "
                         "Split it into smaller parts.")
    return clean_text(text)


def sentences_from_text(text: str | None, max_sentences: int = MAX_SENTENCES, max_chars: int = MAX_CHARS) -> list[str]:
    """One sentence per non-blank line, within the per-request limits."""
    return check_count(split_lines(check_length(text or "", max_chars)), max_sentences=max_sentences)


def uploaded_bytes(path: str | Path, allowed_folder: str | Path | None) -> bytes:
    """An uploaded file's bytes. With `allowed_folder`, a path outside it is refused: a client cannot make
    the server read its files."""
    path = Path(path)
    if allowed_folder is not None and not path.resolve().is_relative_to(Path(allowed_folder).resolve()):
        raise InputError(f"{path.name}: only files uploaded to this app can be read")
    return path.read_bytes()


def sentences_from_file(path: str | Path, allowed_folder: str | Path | None = None,
                        max_sentences: int = MAX_SENTENCES) -> list[str]:
    """Sentences of an uploaded .txt/.csv, each on one line (so they can go into the textbox)."""
    path = Path(path)
    sentences = [" ".join(s.split()) for s in parse_sentences(uploaded_bytes(path, allowed_folder), path.name)]
    return check_count(sentences, f"{path.name}", max_sentences)


def read_table(path: str | Path) -> SentenceTable:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input file {path} does not exist")
    return parse_table(path.read_bytes(), str(path))


def read_sentences(path: str | Path) -> list[str]:
    return read_table(path).texts


# ---- a task's labelled examples -------------------------------------------------------------------------

def examples_from_lines(text: str) -> tuple[list[str], list[str]]:
    """`label: example` lines -> (texts, labels); the label ends at the first colon, blank lines are skipped."""
    texts, labels = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        label, colon, example = line.partition(":")
        if not (colon and label.strip() and example.strip()):
            raise InputError(f"line {number} ({line.strip()[:60]!r}) is not `label: example`; write each example "
                             "as its label, a colon and the sentence, e.g. `refund: where is my money?`")
        labels.append(label.strip())
        texts.append(example.strip())
    if not texts:
        raise InputError("no examples: write one `label: example` line per example, or upload a .csv")
    return texts, labels


def examples_from_csv(data: bytes, name: str) -> tuple[list[str], list[str]]:
    """A .csv with `text` and `label` columns -> (texts, labels); rows missing either are skipped."""
    if Path(name).suffix.lower() != ".csv":
        raise InputError(f"{name}: examples come as a .csv with `text` and `label` columns")
    rows = [row for row in csv_rows(decode_utf8(data, name), name, ("text", "label")) if row["text"] and row["label"]]
    if not rows:
        raise InputError(f"{name} has no rows with both a text and a label")
    return [row["text"] for row in rows], [row["label"] for row in rows]


def examples_from_file(path: str | Path, allowed_folder: str | Path | None = None) -> tuple[list[str], list[str]]:
    """An uploaded examples .csv (see uploaded_bytes for `allowed_folder`)."""
    return examples_from_csv(uploaded_bytes(path, allowed_folder), Path(path).name)


def read_examples(path: str | Path) -> tuple[list[str], list[str]]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"examples file {path} does not exist")
    return examples_from_csv(path.read_bytes(), str(path))


def write_examples(texts: list[str], labels: list[str], path: str | Path) -> None:
    """The examples as the .csv examples_from_csv reads (quotes and commas escaped by the csv module)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows([spreadsheet_safe(t), spreadsheet_safe(y)] for t, y in zip(texts, labels, strict=True))
