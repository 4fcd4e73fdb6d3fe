"""Reading sentences from user files (.txt: one per line; .csv: a `text` column), with clear errors."""
from __future__ import annotations

import csv
import io
from pathlib import Path

SUPPORTED_SUFFIXES = (".txt", ".csv")


class InputError(ValueError):
    """A user-supplied file or text cannot be used; the message says why and what to do."""


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


def sentences_from_csv(text: str, name: str) -> list[str]:
    try:
        reader = csv.DictReader(io.StringIO(text))
        fields = reader.fieldnames or []
        if "text" not in fields:
            raise InputError(f"{name} has no `text` column (columns: {fields[:10]}); "
                             "add a header row with a `text` column")
        return [row["text"].strip() for row in reader if row["text"] and row["text"].strip()]
    except csv.Error as err:
        raise InputError(f"{name} is not a readable CSV file ({err})") from err


def parse_sentences(data: bytes, name: str) -> list[str]:
    """Sentences from the bytes of a .txt or .csv file called `name`."""
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InputError(f"{name}: unsupported file type {suffix or '(none)'!r}; use .txt or .csv")
    text = decode_utf8(data, name)
    sentences = sentences_from_csv(text, name) if suffix == ".csv" else split_lines(text)
    if not sentences:
        raise InputError(f"{name} contains no sentences")
    return sentences


def read_sentences(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input file {path} does not exist")
    return parse_sentences(path.read_bytes(), str(path))
