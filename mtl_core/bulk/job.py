"""Score files of any size on Ray Data: the same command on a laptop and on a cluster.

    python -m mtl_core bulk --input PATH... --output DIR [--text-column text] [--id-column id]
                            [--embeddings] [--address ADDRESS] [--checkpoint DIR]

Needs the bulk requirements (pip install -r requirements-bulk.txt); the app never imports this module.

How it runs: the driver cuts the inputs into parts (sources.py) and hands them to Ray Data as a dataset
of part descriptions; `map_batches` sends each to an actor of a pool sized to the CPUs, which loaded the
model once, reads the part's rows, scores them with the Predictor (the same pass and records as
`python -m mtl_core predict`) and writes them as one Parquet file, atomically. Ray Data's own Parquet writer
is not used because it names its files per write task: a job started again could not tell which rows are
done. Here a part's file exists only once all its rows are in it, and a rerun with the same arguments
scores only the parts without one, so every input row is in the output exactly once. A job's part size is
chosen at its first run (sources.part_size, once Ray says how many actors there are) and kept in _job.json, so
that a rerun cuts the files at the same rows.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from tqdm import tqdm

from mtl_core.bulk.sources import (
    PART_ROWS,
    InputRow,
    Part,
    filesystem,
    input_files,
    input_schema,
    part_size,
    plan,
    read_part,
    text_value,
)
from mtl_core.errors import InputError
from mtl_core.serving.inputs import Row
from mtl_core.serving.records import carried_names
from mtl_core.settings import ROOT, Settings
from mtl_core.tasks.checkpoint import read_config

log = logging.getLogger(__name__)

BATCH_SIZE = 32  # sentences per encoder call (benchmarks/bulk.py: 32, 64 and 128 within 1% here; as predict)
THREADS_PER_ACTOR = 1  # torch threads per actor: one actor per core beats one actor on all cores (benchmarks/bulk.py)
# A worker that dies is restarted and its part redone, 3 times (Ray Data's default is forever, which
# would loop on a part that kills its worker every time, e.g. out of memory).
RETRIES = {"max_restarts": 3, "max_task_retries": 3}
JOB_FILE, SUMMARY_FILE = "_job.json", "_summary.json"
CONNECT_TIMEOUT_S = 5


class BulkError(InputError):
    """The job cannot start as asked (Ray missing or unreachable, an output folder of another job)."""


@dataclass(frozen=True)
class Job:
    """What defines a job's output: a rerun with the same Job resumes, a different one is refused."""

    inputs: list[str]
    text_column: str = "text"
    id_column: str | None = None
    embeddings: bool = False
    checkpoint: str = "assets/checkpoint"
    part_rows: int | None = None  # --part-rows; None: sources.part_size at the first run, then as recorded


@dataclass
class Summary:
    rows_read: int = 0
    rows_written: int = 0
    rows_failed: int = 0
    parts_scored: int = 0
    parts_skipped: int = 0
    seconds: float = 0.0
    ray_start_s: float = 0.0
    actors: int = 0
    threads_per_actor: int = THREADS_PER_ACTOR
    batch_size: int = BATCH_SIZE
    precision: str = ""
    part_rows: int = 0

    @property
    def sentences_per_s(self) -> float:
        return self.rows_read / self.seconds if self.seconds else 0.0

    def text(self) -> str:
        skipped = f", {self.parts_skipped} part(s) already done and skipped" if self.parts_skipped else ""
        return (f"read {self.rows_read:,} rows, wrote {self.rows_written:,} ({self.rows_failed:,} with an error) "
                f"in {self.parts_scored} part(s) of up to {self.part_rows:,} rows{skipped}; "
                f"{self.sentences_per_s:,.0f} sentences/s over "
                f"{self.seconds:.1f} s (Ray started in {self.ray_start_s:.1f} s)")


# ---- the output folder ---------------------------------------------------------------------------------

class Output:
    """The output folder (a path or URI): one Parquet file per part, plus _job.json and _summary.json."""

    def __init__(self, location: str):
        self.location = location.rstrip("/")
        self.fs, self.path = filesystem(self.location)

    def claim(self, job: Job) -> Job:
        """Create the folder for `job`, or check that it holds this same job (to resume it): the job as recorded,
        with the part size it started with unless --part-rows was given."""
        self.fs.create_dir(self.path, recursive=True)
        found = self.read_text(JOB_FILE)
        if found is None:
            return job
        recorded = Job(**json.loads(found))
        if replace(job, part_rows=job.part_rows or recorded.part_rows) != recorded:
            raise BulkError(f"{self.location} holds the output of another job ({JOB_FILE} differs: other inputs, "
                            "columns, checkpoint or --part-rows); give a new --output, or the same arguments to resume")
        return recorded

    def record(self, job: Job) -> None:
        self.write_text(JOB_FILE, json.dumps(asdict(job), indent=2))

    def done(self) -> set[str]:
        """Names of the parts already written (a half-written part has only a temporary name)."""
        listed = self.fs.get_file_info(pafs.FileSelector(self.path))
        return {PurePosixPath(f.path).name for f in listed if f.path.endswith(".parquet")}

    def rows_in(self, names: list[str]) -> int:
        return sum(pq.ParquetFile(self.fs.open_input_file(f"{self.path}/{n}")).metadata.num_rows for n in names)

    def read_text(self, name: str) -> str | None:
        if self.fs.get_file_info(f"{self.path}/{name}").type == pafs.FileType.NotFound:
            return None
        with self.fs.open_input_stream(f"{self.path}/{name}") as f:
            return f.read().decode()

    def write_text(self, name: str, text: str) -> None:
        with self.fs.open_output_stream(f"{self.path}/{name}") as f:
            f.write(text.encode())

    def write_part(self, name: str, table: pa.Table) -> None:
        """Write to a temporary name, then move into place: the name appears only with every row in it."""
        temporary = f"{self.path}/.{name}.{uuid.uuid4().hex}.tmp"
        pq.write_table(table, temporary, filesystem=self.fs)
        self.fs.move(temporary, f"{self.path}/{name}")


# ---- the scoring actor ---------------------------------------------------------------------------------

class PartScorer:
    """One Ray actor: loads the model once, then scores whole parts and writes each one's Parquet file."""

    def __init__(self, job: dict, output: str, precision: str, backbone: str | None, batch_size: int, threads: int,
                 columns: pa.Schema | None = None):
        import torch

        from mtl_core.serving.predictor import Predictor

        torch.set_num_threads(threads)
        self.job, self.output, self.batch_size = Job(**job), Output(output), batch_size
        self.predictor = Predictor.load(checkpoint_path(self.job), backbone, precision=precision)
        self.carried: list[tuple[str, pa.Field]] = []  # (input column, its output field), set below
        probe = self.score([InputRow("id", Row("schema"))])[0]
        columns = columns if columns is not None else pa.schema([])
        names = carried_names(columns.names, list(probe))  # `id`, `text`, `intent`, ... of the input -> input_id, ...
        self.carried = [(f.name, pa.field(name, f.type)) for f, name in zip(columns, names, strict=True)]
        self.schema = output_schema(probe, self.job.embeddings, [f for _, f in self.carried])

    def __call__(self, batch: dict) -> dict:
        summaries = [self.score_part(Part(**json.loads(p))) for p in batch["part"]]
        return {key: [s[key] for s in summaries] for key in ("name", "rows", "errors", "seconds")}

    def score_part(self, part: Part) -> dict:
        started = time.perf_counter()
        records = self.score(read_part(part, self.job.text_column, self.job.id_column))
        self.output.write_part(part.output_name, pa.Table.from_pylist(records, schema=self.schema))
        return {"name": part.output_name, "rows": len(records), "errors": sum(r["error"] is not None for r in records),
                "seconds": time.perf_counter() - started}

    def score(self, rows: list[InputRow]) -> list[dict]:
        """One record per row, in input order: `id`, the input's other columns, the predict command's columns
        (records.output_rows: `text`, `truncated`, `error`, the tasks') and, with --embeddings, the embedding;
        a row with an error has only id, its other columns, text and error."""
        from mtl_core.serving.records import output_rows, predictions

        texts = [r.row.text for r in rows if r.row.error is None]
        results = self.predictor.run(texts, self.batch_size)
        embeddings = iter(results.embeddings)
        records = []
        for r, scored in zip(rows, output_rows([r.row for r in rows], predictions(results)), strict=True):
            record = {"id": r.id, **{f.name: cell(r.values.get(column), f.type) for column, f in self.carried}, **scored}
            if self.job.embeddings and r.row.error is None:
                record["embedding"] = next(embeddings)
            records.append(record)
        return records


def output_schema(record: dict, embeddings: bool, carried: list[pa.Field] = ()) -> pa.Schema:
    """The Parquet columns: `id`, the input's other columns (`carried`), then the prediction columns typed
    from one real record (so they follow the checkpoint's heads; `error` is text) and the embedding."""
    types = {str: pa.string(), float: pa.float64(), int: pa.int64(), bool: pa.bool_(), type(None): pa.string()}
    fields = [pa.field("id", pa.string()), *carried]
    fields += [pa.field(k, types[type(v)]) for k, v in record.items() if k not in ("id", "embedding")]
    if embeddings:
        fields.append(pa.field("embedding", pa.list_(pa.float32(), len(record["embedding"]))))
    return pa.schema(fields)


def cell(value: object, kind: pa.DataType) -> object:
    """An input value as its output column takes it: as it is, or as text in a text column (text_value)."""
    return text_value(value) if pa.types.is_string(kind) else value


# ---- the job -------------------------------------------------------------------------------------------

def checkpoint_path(job: Job) -> Path:
    """The job's checkpoint; a relative one is inside the project, which a cluster's workers receive."""
    path = Path(job.checkpoint)
    return path if path.is_absolute() else ROOT / path


def check_reachable(address: str) -> None:
    """Fail in seconds when nothing listens at HOST:PORT or ray://HOST:PORT: Ray itself keeps retrying for
    minutes. `auto` is left to Ray, which fails at once when this machine is no node of a cluster."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except (OSError, ValueError) as err:
        raise BulkError(f"cannot reach a Ray cluster at {address} ({err}); start one with `ray start --head` "
                        "(docs/bulk.md), or leave out --address to run on this machine") from err


def start_ray(address: str | None) -> int:
    """Connect to a cluster at `address`, or start Ray on this machine with its CPUs; the CPUs it offers."""
    try:
        import ray
    except ImportError as err:
        raise BulkError("bulk scoring needs Ray: pip install -r requirements-bulk.txt") from err
    if address is not None:
        check_reachable(address)
    if not ray.is_initialized():
        runtime = {"working_dir": str(ROOT), "excludes": ["/.git", "/runs", "/data", "/originals", "/tests",
                                                          "/docs", "/benchmarks", "/experiments"]}
        try:
            if address is None:
                # Ray warns at every local start that token authentication, its default, is on: no news to a user
                logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
                ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING)
            else:  # the project's code and checkpoint go to the workers with the job
                ray.init(address=address, runtime_env=runtime, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise BulkError(f"cannot reach a Ray cluster at {address} ({err}); start one with `ray start --head` "
                            "(docs/bulk.md), or leave out --address to run on this machine") from err
    return int(ray.cluster_resources().get("CPU", 1))


def run_job(job: Job, output: str, settings: Settings, address: str | None = None, actors: int | None = None,
            batch_size: int = BATCH_SIZE, threads: int = THREADS_PER_ACTOR, show_progress: bool = True) -> Summary:
    """Score every input row not yet in `output`; returns what this run read, wrote and how fast."""
    started = time.perf_counter()
    read_config(checkpoint_path(job))  # a wrong --checkpoint fails here, not in every actor
    files = input_files(job.inputs)
    planned = PART_ROWS if job.part_rows is None else job.part_rows
    parts = plan(files, job.text_column, job.id_column, planned)  # every file checked and its rows counted
    out = Output(output)
    job = out.claim(job)
    summary = Summary(batch_size=batch_size, threads_per_actor=threads, precision=settings.precision)
    if job.part_rows is None:  # a new job: its part size follows its rows and actors, so Ray starts first
        if parts:
            summary.actors, summary.ray_start_s = start_actors(address, actors, threads)
        job = replace(job, part_rows=part_size(sum(p.rows for p in parts), summary.actors))
    out.record(job)
    if job.part_rows != planned:
        parts = plan(files, job.text_column, job.id_column, job.part_rows)
    done = out.done()
    todo = [p for p in parts if p.output_name not in done]
    summary.part_rows, summary.parts_skipped = job.part_rows, len(parts) - len(todo)
    summary.rows_written = out.rows_in([p.output_name for p in parts if p.output_name in done])
    if todo:
        if not summary.actors:
            summary.actors, summary.ray_start_s = start_actors(address, actors, threads)
        summary.actors = min(summary.actors, len(todo))
        log.info("%d parts of up to %d rows to score (%d done before) on %d actor(s) x %d thread(s), batch %d",
                 len(todo), job.part_rows, summary.parts_skipped, summary.actors, threads, batch_size)
        for result in score_parts(todo, job, output, settings, summary.actors, batch_size, threads, show_progress,
                                  input_schema(parts)):
            summary.rows_read += result["rows"]
            summary.rows_written += result["rows"]
            summary.rows_failed += result["errors"]
            summary.parts_scored += 1
    summary.seconds = time.perf_counter() - started
    out.write_text(SUMMARY_FILE, json.dumps({**asdict(summary), "sentences_per_s": summary.sentences_per_s}, indent=2))
    return summary


def start_actors(address: str | None, actors: int | None, threads: int) -> tuple[int, float]:
    """Start Ray (or connect to a cluster): the actors to run (--actors, else one per `threads` CPUs) and the
    seconds it took."""
    started = time.perf_counter()
    cpus = start_ray(address)
    return actors or max(1, cpus // threads), time.perf_counter() - started


def score_parts(todo: list[Part], job: Job, output: str, settings: Settings, actors: int, batch_size: int,
                threads: int, show_progress: bool, columns: pa.Schema | None = None) -> Iterator[dict]:
    """Each part's summary as its file is written: Ray Data streams the parts through the actor pool."""
    import ray

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours counts rows against the planned total
    context.max_errored_blocks = 0  # a part that fails after its retries fails the job (a rerun resumes it)
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # its per-dataset INFO lines drown the progress bar
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "Progress bars disabled": ours is on
    items = [{"part": json.dumps(asdict(p))} for p in todo]
    with warnings.catch_warnings():  # Ray 2.60 has no other way to set the retries than these kwargs
        warnings.simplefilter("ignore", DeprecationWarning)
        scored = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            PartScorer, batch_size=1, compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=threads,
            fn_constructor_kwargs=dict(job=asdict(job), output=output, precision=settings.precision,
                                       backbone=settings.backbone, batch_size=batch_size, threads=threads,
                                       columns=columns),
            **RETRIES)
    desc = f"bulk, parts of up to {job.part_rows:,} rows"
    with tqdm(total=sum(p.rows for p in todo), unit="row", desc=desc, disable=not show_progress) as bar:
        for result in scored.iter_rows():
            bar.update(result["rows"])
            yield result
