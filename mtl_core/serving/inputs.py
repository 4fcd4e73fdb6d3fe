"""Reading user input, with clear errors: sentences (.txt: one per line; .csv: a `text` column, and the other
columns beside it, which the predict command carries through) and a task's labelled examples (`label: example`
lines, or a .csv with `text` and `label` columns).

One reader for every file of sentences, whoever reads it (predict, embed, bulk scoring, the app's upload, a task's
examples): a file is cut into rows (a .txt's lines, a .csv's records; bulk/sources.py adds .jsonl and .parquet),
and read_row checks each alike: its text, or why it cannot be scored (`error`: empty, not UTF-8, too long, a CSV
record with more fields than its header). The commands write one output row per input row, an error row
included; the app and a task's examples refuse a file with such a row, naming its line.
"""
from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mtl_core.errors import InputError
from mtl_core.settings import MAX_CHARS, MAX_SENTENCES

SUPPORTED_SUFFIXES = (".txt", ".csv")
# A spreadsheet runs a cell that begins with one of these as a formula (CSV injection); such a text is written
# with a leading apostrophe, which spreadsheets show as text and hide, and which reading strips again.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MAX_ROW_CHARS = 10_000  # a row longer than this is a document, not a sentence: the encoder reads only its first ~1,000
EMPTY = "empty"  # the error of a row without a text


def spreadsheet_safe(value: object) -> object:
    """A text cell as CSV downloads write it: "'=1+2" for "=1+2", so that a spreadsheet shows it and never
    runs it; anything else unchanged."""
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def from_spreadsheet(value: str) -> str:
    """spreadsheet_safe undone: a CSV this app wrote reads back as it was."""
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_STARTS) else value


def split_lines(text: str) -> list[str]:
    """One sentence per non-blank line, surrounding whitespace removed (typed text; a file's lines: text_lines)."""
    return [line.strip() for line in text.splitlines() if line.strip()]


# ---- one row ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One input row: its text, or why it cannot be scored (`error`) and its text as far as it can be shown."""

    text: str
    error: str | None = None


def read_row(value: object, error: str | None = None) -> Row:
    """One raw line or cell as a Row: bytes decoded as UTF-8, surrounding whitespace removed, checked by
    row_error; `error`: the caller's own reason, e.g. a line that is no JSON object."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="surrogateescape")  # a bad byte stays visible to row_error
    if isinstance(value, str):
        value = value.strip()
    error = error or row_error(value)
    shown = value if isinstance(value, str) else ("" if value is None else str(value))
    return Row(printable(shown) if error else shown, error)


def row_error(text: object) -> str | None:
    """Why a row's value cannot be scored: empty, not text, not UTF-8 or longer than MAX_ROW_CHARS; None if it can."""
    if not isinstance(text, str):
        return EMPTY if text is None else f"not text ({type(text).__name__})"
    if not text:
        return EMPTY
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return f"not UTF-8 (bad byte at character {err.start + 1})"
    if len(text) > MAX_ROW_CHARS:
        return f"{len(text):,} characters; at most {MAX_ROW_CHARS:,} per row"
    return None


def printable(text: str) -> str:
    """Lone surrogates (undecodable bytes) shown as U+FFFD, so that an error row's text can be written."""
    return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")


def text_lines(data: bytes, starts_file: bool = True) -> list[bytes]:
    """The lines of a text file's bytes, split at b"\n" only (the \r of \r\n is whitespace, which read_row
    strips; a lone \r stays inside its line), a blank line included; after a final newline there is no line.
    `starts_file`: the bytes begin the file, whose UTF-8 byte order mark is no text."""
    lines = (data.removeprefix(codecs.BOM_UTF8) if starts_file else data).split(b"\n")
    return lines[:-1] if lines[-1] == b"" else lines


def check_text_file(data: bytes, name: str) -> None:
    if b"\x00" in data[:8192]:
        raise InputError(f"{name} looks like a binary file, not text; give a UTF-8 .txt or .csv")


def decoded_file(data: bytes, name: str) -> str:
    """A text file's bytes as text; an undecodable byte becomes a lone surrogate, which read_row reports for
    its row only. InputError for a binary file."""
    check_text_file(data, name)
    return data.removeprefix(codecs.BOM_UTF8).decode("utf-8", errors="surrogateescape")


# ---- CSV records -----------------------------------------------------------------------------------------

def check_header(fields: Sequence[str], columns: Sequence[str], name: str, fix: str | None = None) -> None:
    missing = [c for c in columns if c not in fields]
    if missing:
        wanted = " and ".join(f"`{c}`" for c in columns)
        fix = fix or f"add a header row with {wanted} column{'s' if len(columns) > 1 else ''}"
        raise InputError(f"{name} has no {' or '.join(f'`{c}`' for c in missing)} column (columns: {list(fields)[:10]}); "
                         f"{fix}")


def csv_table(text: str, name: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """A CSV file's header and its records, each with the line it starts on (from 1); a blank line is no record."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header, records = next(reader, []), []
        line = reader.line_num + 1
        for record in reader:
            if record:
                records.append((line, record))
            line = reader.line_num + 1
    except csv.Error as err:
        raise InputError(f"{name} is not a readable CSV file (line {reader.line_num}: {err})") from err
    return header, records


def record_error(record: Sequence[str], width: int) -> str | None:
    """A record with more fields than its header's `width`: most often a text with an unquoted comma."""
    if len(record) <= width:
        return None
    return (f"{len(record)} fields where the header has {width} (extra: {printable(record[width])[:60]!r}); "
            "a text that holds a comma must be in double quotes")


def csv_cell(record: Sequence[str], at: int) -> str:
    """A text cell as a CSV this app wrote meant it: surrounding whitespace and the formula guard removed; a
    short record's missing cell is empty."""
    return from_spreadsheet(record[at].strip()) if at < len(record) else ""


def csv_text_row(record: Sequence[str], width: int, at: int) -> Row:
    """The Row of a record's text (column `at`); a record with more fields than the header is an error row."""
    return read_row(csv_cell(record, at), record_error(record, width))


def other_columns(header: Sequence[str], skip: Sequence[str]) -> list[tuple[int, str]]:
    """(position, name) of a CSV header's columns besides the first of each name in `skip` (the text column,
    bulk's id column), a column without a name called `column_<position>` (1 = the first column)."""
    skipped = {header.index(name) for name in skip}
    return [(i, name or f"column_{i + 1}") for i, name in enumerate(header) if i not in skipped]


# ---- a file of sentences ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class SentenceTable:
    """The rows of a .txt or .csv file, in order, each with the line it starts on and, for a .csv, the values of
    `columns` (the header's but the text column's, other_columns' names) on its record, as written. A .txt has
    no other columns."""

    rows: list[Row]
    lines: list[int]
    columns: list[str] = field(default_factory=list)
    values: list[list[str]] = field(default_factory=list)

    @property
    def texts(self) -> list[str]:
        """The texts of the rows that can be scored, in order."""
        return [r.text for r in self.rows if r.error is None]

    @property
    def scored(self) -> list[int]:
        """The positions of the rows that can be scored."""
        return [i for i, r in enumerate(self.rows) if r.error is None]

    def errors(self) -> list[tuple[int, str]]:
        """(line, error) of each row that cannot be scored."""
        return [(line, r.error) for line, r in zip(self.lines, self.rows, strict=True) if r.error is not None]

    def error_note(self) -> str:
        """What a command says about the rows it could not score: '' or '; 2 rows with an error (line 3: empty, ...)'."""
        found = self.errors()
        if not found:
            return ""
        listed = ", ".join(f"line {line}: {error}" for line, error in found[:3]) + (", ..." if len(found) > 3 else "")
        return f"; {len(found):,} row{'s' if len(found) > 1 else ''} with an error ({listed})"


def table_from_csv(text: str, name: str) -> SentenceTable:
    """The rows of the first column named `text`, each with its record's other values."""
    header, records = csv_table(text, name)
    check_header(header, ("text",), name)
    at, others = header.index("text"), other_columns(header, ("text",))
    table = SentenceTable([], [], [column for _, column in others], [])
    for line, record in records:
        table.rows.append(csv_text_row(record, len(header), at))
        table.lines.append(line)
        table.values.append([printable(record[i]) if i < len(record) else "" for i, _ in others])
    return table


def parse_table(data: bytes, name: str) -> SentenceTable:
    """The rows (and a .csv's other columns) of the bytes of a .txt or .csv file called `name`; InputError when
    not one row can be scored."""
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InputError(f"{name}: unsupported file type {suffix or '(none)'!r}; use .txt or .csv")
    if suffix == ".csv":
        table = table_from_csv(decoded_file(data, name), name)
    else:
        check_text_file(data, name)
        lines = text_lines(data)
        table = SentenceTable([read_row(line) for line in lines], list(range(1, len(lines) + 1)), [], [[]] * len(lines))
    if not table.rows:
        raise InputError(f"{name} contains no sentences")
    if not table.texts:
        line, error = table.errors()[0]
        raise InputError(f"{name} contains no sentences that can be scored (line {line}: {error})")
    return table


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
    """Sentences of an uploaded .txt/.csv, each on one line (so they can go into the textbox). Empty rows are
    left out, as the textbox leaves out empty lines; a row with another error refuses the file, naming its line."""
    path = Path(path)
    table = parse_table(uploaded_bytes(path, allowed_folder), path.name)
    for line, error in table.errors():
        if error != EMPTY:
            raise InputError(f"{path.name} line {line}: {error}; correct the row or remove it")
    return check_count([" ".join(s.split()) for s in table.texts], f"{path.name}", max_sentences)


def read_table(path: str | Path) -> SentenceTable:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input file {path} does not exist")
    return parse_table(path.read_bytes(), str(path))


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
    """A .csv with `text` and `label` columns -> (texts, labels). A row whose text or label the sentence reader
    would not score (empty, too long, more fields than the header, ...) refuses the file, naming its line: a
    task fitted on rows the file did not mean would answer wrongly without a word."""
    if Path(name).suffix.lower() != ".csv":
        raise InputError(f"{name}: examples come as a .csv with `text` and `label` columns")
    header, records = csv_table(decoded_file(data, name), name)
    check_header(header, ("text", "label"), name)
    at, label_at = header.index("text"), header.index("label")
    texts, labels = [], []
    for line, record in records:
        text, label = csv_text_row(record, len(header), at), read_row(csv_cell(record, label_at))
        for what, row in (("text", text), ("label", label)):
            if row.error:
                raise InputError(f"{name} line {line}, {what}: {row.error}")
        texts.append(text.text)
        labels.append(label.text)
    if not texts:
        raise InputError(f"{name} has no examples: add rows with a text and a label")
    return texts, labels


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
