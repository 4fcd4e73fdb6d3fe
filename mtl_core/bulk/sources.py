"""The input side of bulk scoring (python -m mtl_core bulk): find the input files, cut each into parts of
about `part_rows` rows, and read one part's rows back, each with an id and, when it cannot be scored, an error.
Each row is checked as every command checks its input (serving/inputs.py: read_row, csv_text_row); what is
here is what bulk adds: parts, .jsonl and .parquet files, object stores, ids.

A part is the unit of resumption: its rows are scored and written as one output file, atomically, and a
job started again with the same arguments skips every part whose file exists. Parts are cut at the same
rows every time: text and JSON-lines files by line, CSV files by record (a quoted newline stays inside
its record), Parquet files at row-group boundaries. Planning reads each text file once (no parsing of the
rows' contents, ~1 s per million rows; once more for a new job cut smaller than PART_ROWS); the scoring reads
only its own part (a seek to the part's byte offset). Files are opened through pyarrow's file systems, so a
local path and an object-store URI (s3://bucket/prefix, gs://...) are read alike.

Row ids: the input's own (--id-column), else `FILE:LINE` for .txt/.jsonl and `FILE:ROW` for .csv/.parquet
(ROW 1 is the first data row). Every line of a .txt/.jsonl file is a row, a blank one too (with the error
`empty`), as the predict command reads a .txt; a blank line of a .csv is no record, as in the predict command.

Part size: --part-rows, else part_size(): parts small enough that every actor gets several, so that a job
stopped half-way has kept about half of its work (a 20,000-row file in parts of 10,000 would keep nothing).

Other columns: each row also carries its file's columns besides the text and id columns (Part.columns): a
.csv's header (a column named twice is carried twice, the second with `input_` before its name, a column
without a name as `column_<position>`), the keys of a .jsonl file's first line (keys that only later lines
have are not carried), a .parquet file's columns. input_schema gives them one type per name for the whole job,
so that every part's file has the same columns.
"""
from __future__ import annotations

import csv
import fnmatch
import glob
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from mtl_core.errors import InputError
from mtl_core.serving.inputs import Row, check_header, csv_text_row, other_columns, printable, read_row, text_lines
from mtl_core.serving.records import carried_names

FORMATS = {".txt": "txt", ".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}
PART_ROWS = 10_000  # the most rows per part: ~30 s of one core's work: what a crash can cost per worker
MIN_PART_ROWS = 500  # the fewest (but for a smaller file): seconds of work, against each part's file and scheduling
PARTS_PER_ACTOR = 4  # at least, where the input allows: a stop at any time keeps most of the finished work


@dataclass(frozen=True)
class Part:
    """Rows [first_row, first_row + rows) of one input file (row numbers from 0), and where they lie:
    bytes [start, end) for text formats, row groups for Parquet. `number`: the line (txt, jsonl) or data
    row (csv, parquet) of its first row, from 1, for ids."""

    source: str  # path or URI, as given or listed: how pyarrow opens it and how ids name the file
    format: str
    index: int  # this part's position in its file
    rows: int
    number: int
    start: int = 0
    end: int = 0
    row_groups: tuple[int, ...] = ()
    header: tuple[str, ...] = ()  # a CSV file's columns
    columns: tuple[str, ...] = ()  # the file's other columns (besides text and id), carried to the output

    @property
    def output_name(self) -> str:
        """The part's output file: the same name every time the same file is cut the same way."""
        digest = hashlib.blake2b(self.source.encode(), digest_size=4).hexdigest()
        return f"{PurePosixPath(self.source).stem}-{digest}-{self.index:05d}.parquet"


@dataclass(frozen=True)
class InputRow:
    id: str
    row: Row  # its text, or its error
    values: dict = field(default_factory=dict)  # Part.columns -> this row's value (a missing one: absent)


def filesystem(location: str) -> tuple[pafs.FileSystem, str]:
    """pyarrow's file system for a local path or a URI, and the path inside it."""
    if "://" in location:
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), str(PurePosixPath(location))


def input_files(locations: list[str]) -> list[str]:
    """Every input file, in a stable order, from paths, folders (searched recursively for the formats) and
    globs; a file named twice counts once."""
    found: list[str] = []
    for location in locations:
        found += files_at(location)
    return list(dict.fromkeys(found))


def files_at(location: str) -> list[str]:
    if "://" not in location and any(c in location for c in "*?["):
        files = sorted(p for p in glob.glob(location, recursive=True) if file_format(p, strict=False))
        if not files:
            raise InputError(f"no {'/'.join(FORMATS)} files match {location}")
        return files
    fs, path = filesystem(location)
    pattern = PurePosixPath(path).name if any(c in path for c in "*?[") else None
    info = fs.get_file_info(str(PurePosixPath(path).parent) if pattern else path)
    if info.type == pafs.FileType.NotFound:
        raise InputError(f"input {location} does not exist")
    if info.type == pafs.FileType.File:
        file_format(location)  # an explicitly named file must be a supported type
        return [location]
    listed = fs.get_file_info(pafs.FileSelector(info.path, recursive=True))
    prefix = location[:len(location) - len(path)] if "://" in location else ""
    files = sorted(prefix + f.path for f in listed if f.type == pafs.FileType.File and file_format(f.path, strict=False)
                   and (pattern is None or fnmatch.fnmatch(PurePosixPath(f.path).name, pattern)))
    if not files:
        raise InputError(f"no {'/'.join(FORMATS)} files in {location}")
    return files


def file_format(path: str, strict: bool = True) -> str | None:
    suffix = PurePosixPath(path).suffix.lower()
    if suffix not in FORMATS and strict:
        raise InputError(f"{path}: unsupported file type {suffix or '(none)'!r}; use {', '.join(FORMATS)}")
    return FORMATS.get(suffix)


# ---- planning ------------------------------------------------------------------------------------------

def part_size(rows: int, actors: int) -> int:
    """Rows per part for a job of `rows` rows on `actors` actors when --part-rows is not given: PARTS_PER_ACTOR
    parts per actor, within [MIN_PART_ROWS, PART_ROWS]."""
    return max(MIN_PART_ROWS, min(PART_ROWS, -(-rows // (PARTS_PER_ACTOR * max(actors, 1)))))


def plan(files: list[str], text_column: str, id_column: str | None, part_rows: int = PART_ROWS) -> list[Part]:
    """Every file cut into parts of `part_rows` rows (Parquet: whole row groups, at least `part_rows`);
    an InputError when a file lacks the columns asked for."""
    if part_rows < 1:
        raise InputError(f"--part-rows must be at least 1, got {part_rows}")
    parts: list[Part] = []
    for source in files:
        fmt = file_format(source)
        planner = {"txt": plan_lines, "jsonl": plan_lines, "csv": plan_csv, "parquet": plan_parquet}[fmt]
        parts += planner(source, fmt, text_column, id_column, part_rows)
    return parts


def open_bytes(source: str) -> io.BufferedReader:
    fs, path = filesystem(source)
    return io.BufferedReader(fs.open_input_stream(path), buffer_size=1 << 20)


def cut(source: str, fmt: str, starts: Iterator[tuple[int, int]], part_rows: int, end: list[int],
        header: tuple[str, ...] = (), columns: tuple[str, ...] = ()) -> list[Part]:
    """Parts from (byte offset, number) of each row's start, every `part_rows` rows; end[0]: the file's
    last byte offset, known once `starts` is exhausted."""
    bounds = []  # (start offset, number, rows) of each part
    for i, (offset, number) in enumerate(starts):
        if i % part_rows == 0:
            bounds.append([offset, number, 0])
        bounds[-1][2] += 1
    return [Part(source, fmt, k, rows, number, start,
                 bounds[k + 1][0] if k + 1 < len(bounds) else end[0], header=header, columns=columns)
            for k, (start, number, rows) in enumerate(bounds)]


def plan_lines(source: str, fmt: str, text_column: str, id_column: str | None, part_rows: int) -> list[Part]:
    end = [0]

    def starts() -> Iterator[tuple[int, int]]:
        offset = 0
        with open_bytes(source) as f:
            for number, line in enumerate(f, 1):  # split at b"\n" only, as text_lines splits
                yield offset, number
                offset += len(line)
        end[0] = offset

    parts = cut(source, fmt, starts(), part_rows, end)
    if fmt == "jsonl" and parts:
        keys = check_json_columns(parts[0], text_column, id_column)
        others = tuple(k for k in keys if k not in (text_column, id_column))
        parts = [replace(p, columns=others) for p in parts]
    return parts


def check_json_columns(part: Part, text_column: str, id_column: str | None) -> list[str]:
    """The first JSON line must have the columns asked for (later lines without them get an error each);
    its keys, which are the file's columns."""
    with open_bytes(part.source) as f:
        line = next((line for line in f if line.strip()), b"{}")
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{part.source}: the first line is not JSON ({err}); .jsonl files hold one JSON object "
                         "per line") from err
    keys = list(record) if isinstance(record, dict) else []
    check_columns(part.source, keys, text_column, id_column)
    return keys


def check_columns(source: str, columns: list[str], text_column: str, id_column: str | None) -> None:
    for name, flag in [(text_column, "--text-column"), (id_column, "--id-column")]:
        if name is not None:
            check_header(columns, (name,), source, f"name the right one with {flag}")


class CountingLines:
    """A binary file's lines, decoded for the csv module, counting the bytes handed out: after the csv
    reader returns a record, `offset` is where the next record starts (the reader never reads ahead)."""

    def __init__(self, f: io.BufferedReader, offset: int = 0):
        self.f, self.offset = f, offset

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = self.f.readline()
        if not line:
            raise StopIteration
        self.offset += len(line)
        return line.decode("utf-8", errors="surrogateescape")


def csv_header(f: io.BufferedReader, source: str) -> tuple[tuple[str, ...], CountingLines]:
    lines = CountingLines(f)
    try:
        header = next(csv.reader(lines), None)
    except csv.Error as err:
        raise InputError(f"{source} is not a readable CSV file ({err})") from err
    if not header:
        raise InputError(f"{source} is empty; a .csv needs a header row with a `text` column")
    header[0] = header[0].removeprefix("\ufeff")
    return tuple(header), lines


def plan_csv(source: str, fmt: str, text_column: str, id_column: str | None, part_rows: int) -> list[Part]:
    end = [0]
    with open_bytes(source) as f:
        header, lines = csv_header(f, source)
        check_columns(source, list(header), text_column, id_column)

        def starts() -> Iterator[tuple[int, int]]:
            reader, offset = csv.reader(lines), lines.offset
            try:
                for number, record in enumerate(reader, 1):
                    if record:  # a blank line is no record
                        yield offset, number
                    offset = lines.offset
            except csv.Error as err:
                raise InputError(f"{source} is not a readable CSV file ({err})") from err
            end[0] = lines.offset

        others = tuple(name for _, name in csv_other_columns(header, text_column, id_column))
        return cut(source, fmt, starts(), part_rows, end, header, others)


def csv_other_columns(header: tuple[str, ...], text_column: str, id_column: str | None) -> list[tuple[int, str]]:
    """inputs.other_columns, the names made unique (records.carried_names): each is a key of InputRow.values."""
    found = other_columns(header, [text_column] + ([id_column] if id_column else []))
    names = carried_names([name for _, name in found], ())
    return [(i, name) for (i, _), name in zip(found, names, strict=True)]


def plan_parquet(source: str, fmt: str, text_column: str, id_column: str | None, part_rows: int) -> list[Part]:
    fs, path = filesystem(source)
    with fs.open_input_file(path) as f:
        meta = pq.ParquetFile(f).metadata
        check_columns(source, meta.schema.names, text_column, id_column)
        groups = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
    others = tuple(c for c in meta.schema.to_arrow_schema().names if c not in (text_column, id_column))
    parts, first, pending = [], 0, []
    for g in range(len(groups)):
        pending.append(g)
        count = sum(groups[i] for i in pending)
        if count and (count >= part_rows or g == len(groups) - 1):
            parts.append(Part(source, fmt, len(parts), count, first + 1, row_groups=tuple(pending), columns=others))
            first, pending = first + count, []
    return parts


def input_schema(parts: list[Part]) -> pa.Schema:
    """The other columns of all the job's files, in the order they first appear, each with one type for the
    whole job: a .parquet column's own type where every file that has the column agrees on it (a file whose
    column is all nulls agrees with any), else text, as .csv and .jsonl columns are (text_value)."""
    types: dict[str, pa.DataType] = {}
    for part in (p for p in parts if p.index == 0):  # each file's first part: its columns are the file's
        found = {name: pa.string() for name in part.columns}
        if part.format == "parquet":
            fs, path = filesystem(part.source)
            with fs.open_input_file(path) as f:
                schema = pq.ParquetFile(f).schema_arrow
            found = {name: schema.field(name).type for name in part.columns}
        for name, kind in found.items():
            known = types.setdefault(name, kind)
            if pa.types.is_null(known):
                types[name] = kind
            elif kind != known and not pa.types.is_null(kind):
                types[name] = pa.string()
    return pa.schema([pa.field(name, kind) for name, kind in types.items()])


def text_value(value: object) -> str | None:
    """A carried value in a text column: a string as it is, a JSON value (number, true/false, list, object) as
    JSON (`7`, `true`, `[1, 2]`), anything else (a date from a .parquet file) as str() writes it."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float, list, dict)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


# ---- reading one part ----------------------------------------------------------------------------------

def read_part(part: Part, text_column: str, id_column: str | None) -> list[InputRow]:
    """The part's rows, each with its id, its text and the reason it cannot be scored (None if it can)."""
    reader = {"txt": read_txt, "jsonl": read_jsonl, "csv": read_csv, "parquet": read_parquet}[part.format]
    rows = list(reader(part, text_column, id_column))
    if len(rows) != part.rows:  # the file changed since the job was planned
        raise InputError(f"{part.source} changed while being scored (part {part.index}: {len(rows)} rows, "
                         f"planned {part.rows}); start a new job with a new --output")
    return rows


def part_bytes(part: Part) -> bytes:
    fs, path = filesystem(part.source)
    with fs.open_input_file(path) as f:
        f.seek(part.start)
        return f.read(part.end - part.start)


def numbered_lines(part: Part) -> Iterator[tuple[int, bytes]]:
    """The part's lines and their numbers, as planning counted them (text_lines)."""
    return enumerate(text_lines(part_bytes(part), starts_file=part.start == 0), part.number)


def read_txt(part: Part, text_column: str, id_column: str | None) -> Iterator[InputRow]:
    for number, line in numbered_lines(part):
        yield InputRow(f"{part.source}:{number}", read_row(line))


def read_jsonl(part: Part, text_column: str, id_column: str | None) -> Iterator[InputRow]:
    for number, line in numbered_lines(part):
        row_id = f"{part.source}:{number}"
        if not line.strip():
            yield InputRow(row_id, read_row(line))  # a blank line: empty, as in a .txt
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            yield InputRow(row_id, read_row(line, f"not a JSON object ({err.__class__.__name__})"))
            continue
        if not isinstance(record, dict):
            yield InputRow(row_id, read_row(line, "not a JSON object"))
            continue
        yield InputRow(input_id(record, id_column, row_id), read_row(record.get(text_column)),
                       {c: record[c] for c in part.columns if c in record})


def read_csv(part: Part, text_column: str, id_column: str | None) -> Iterator[InputRow]:
    text = part_bytes(part).decode("utf-8", errors="surrogateescape")
    records = (r for r in csv.reader(io.StringIO(text, newline="")) if r)
    at = part.header.index(text_column)
    id_at = part.header.index(id_column) if id_column else None
    others = csv_other_columns(part.header, text_column, id_column)
    for number, record in enumerate(records, part.number):
        cells = record + [""] * (len(part.header) - len(record))  # a short record lacks the last columns
        row_id = cells[id_at] if id_at is not None and cells[id_at] else f"{part.source}:{number}"
        # an undecodable byte in another column is shown as U+FFFD (Parquet takes only UTF-8); the text's is an error
        yield InputRow(row_id, csv_text_row(record, len(part.header), at),
                       {name: printable(cells[i]) for i, name in others})


def read_parquet(part: Part, text_column: str, id_column: str | None) -> Iterator[InputRow]:
    fs, path = filesystem(part.source)
    columns = [text_column] + ([id_column] if id_column else []) + list(part.columns)
    with fs.open_input_file(path) as f:
        table = pq.ParquetFile(f).read_row_groups(list(part.row_groups), columns=columns)
    texts = table.column(text_column).to_pylist()
    ids = table.column(id_column).to_pylist() if id_column else [None] * len(texts)
    others = {name: table.column(name).to_pylist() for name in part.columns}
    for i, (text, row_id) in enumerate(zip(texts, ids, strict=True)):
        yield InputRow(str(row_id) if row_id is not None else f"{part.source}:{part.number + i}", read_row(text),
                       {name: values[i] for name, values in others.items()})


def input_id(record: dict, id_column: str | None, fallback: str) -> str:
    value = record.get(id_column) if id_column else None
    return fallback if value is None or value == "" else str(value)
